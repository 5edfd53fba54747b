"""Stage 3, face tracks: imported from the TalkNet-ASD / WhisperV demo's ``tracks.pckl``, or found by the
built-in offline detector + IoU tracker. Either way the result is a list of
:class:`~mit_dataset.annotate.tracks.Track` on the normalised video's frames, gaps up to ``max_gap_frames``
interpolated, cut at every camera cut, at least ``min_track_frames`` long, numbered ``track_id = 0, 1, ...``
in order of their first frame.

Import: the pickles are read only through :func:`mit_dataset.talknet.load_talknet_outputs` (the project's
guarded loader); frame numbers index the raw video's decoded frames and are mapped to the normalised frames.

Built-in detector, and why this one (measured here, torch 2.13 CPU, Python 3.11, PyPI only, no download):

- OpenCV's Haar cascades (``opencv-python-headless>=4.8,<5``): the cascades ship in ``cv2.data``; 5.0 no longer
  ships them. YuNet (``cv2.FaceDetectorYN``) and the res10 SSD need model files that no wheel ships.
- facenet-pytorch 2.6 (MTCNN weights inside): requires ``torch<2.3`` and torchvision, so it would replace
  the project's torch: excluded.
- mediapipe 1.2: the wheel holds no model (``.tflite``/``.task``) files, the face detector must be downloaded;
  it also requires the GUI ``opencv-contrib-python``: excluded.

So the built-in detector is OpenCV's frontal-face cascade plus the profile cascade on the image and its mirror
(talk-show guests turn to each other), non-maximum suppression at IoU 0.3, run every ``face_detect_every``
frames on grey frames scaled so that the smallest face a clip may hold (``min_face_size``) is about
:data:`HAAR_MIN_FACE_PIXELS` pixels (the frontal cascade's window size). Tracks are smoothed with a 5-detection moving
average. Cascades miss faces at strong angles and under occlusion, and fire on face-like textures: its tracks
are a baseline for videos without TalkNet outputs, not a replacement for them (speeds in the README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..frame_decoder import iter_frames
from ..talknet import box_iou, load_talknet_outputs
from .config import AnnotateConfig
from .errors import SkipVideo
from .layout import RawVideo
from .normalize import NormalizedVideo
from .shots import analysis_transform
from .tracks import Track, interpolate_track, link_detections, smooth_boxes, split_at_cuts

#: The smallest face a clip may hold is scaled to about this many pixels for the Haar cascades.
HAAR_MIN_FACE_PIXELS = 24
HAAR_MIN_NEIGHBOURS = 5
SMOOTHING_DETECTIONS = 5


def _finish(pieces: list[Track], shots: list[tuple[int, int]], config: AnnotateConfig) -> list[Track]:
    pieces = [t for t in split_at_cuts(pieces, shots) if len(t.boxes) >= config.min_track_frames]
    pieces.sort(key=lambda t: (t.start, float(t.boxes[0, 0])))
    for index, track in enumerate(pieces):
        track.track_id = index
    return pieces


def import_face_tracks(
    video: RawVideo, normalized: NormalizedVideo, shots: list[tuple[int, int]], config: AnnotateConfig
) -> list[Track]:
    """Face tracks from ``pywork/tracks.pckl`` (raises :class:`SkipVideo` ``"bad_annotation"`` naming the file
    when the pickles are unreadable, hostile or of the wrong shape)."""
    folder = video.talknet_dir
    try:
        talknet = load_talknet_outputs(folder / "tracks.pckl", folder / "scores.pckl")
    except ValueError as error:
        raise SkipVideo("bad_annotation", str(error)) from error
    pieces = []
    for index, track in enumerate(talknet):
        if not np.isfinite(track.boxes).all():
            raise SkipVideo("bad_annotation", f"{folder / 'tracks.pckl'}: track {index} has NaN/inf boxes")
        frames = normalized.output_frames_of(track.frames)
        inside = (frames >= 0) & (frames < normalized.num_frames)
        pieces += interpolate_track(frames[inside], track.boxes[inside], config.max_gap_frames, index)
    return _finish(pieces, shots, config)


def _haar_cascades():
    import cv2

    def load(name: str):
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
        if cascade.empty():
            raise RuntimeError(
                f"OpenCV's {name} is missing from cv2.data: install opencv-python-headless>=4.8,<5"
            )
        return cascade

    return load("haarcascade_frontalface_default.xml"), load("haarcascade_profileface.xml")


def _non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(box_iou(boxes[i], boxes[j]) < iou for j in keep):
            keep.append(int(i))
    return boxes[keep]


def detect_faces(gray: np.ndarray, cascades, min_size: int, scale_factor: float) -> np.ndarray:
    """Face boxes ``(m, 4)`` xyxy in ``gray``'s pixels: frontal + both profiles, overlaps suppressed."""
    frontal, profile = cascades
    width = gray.shape[1]
    found, weights = [], []
    for cascade, mirrored in ((frontal, False), (profile, False), (profile, True)):
        image = gray[:, ::-1] if mirrored else gray
        boxes, _, levels = cascade.detectMultiScale3(
            np.ascontiguousarray(image),
            scaleFactor=scale_factor,
            minNeighbors=HAAR_MIN_NEIGHBOURS,
            minSize=(min_size, min_size),
            outputRejectLevels=True,
        )
        for (x, y, w, h), level in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(levels).reshape(-1)):
            x1 = width - x - w if mirrored else x
            found.append([x1, y, x1 + w, y + h])
            weights.append(float(level) + (0.5 if cascade is frontal else 0.0))
    if not found:
        return np.zeros((0, 4), np.float32)
    return _non_maximum_suppression(np.asarray(found, np.float32), np.asarray(weights), 0.3)


def detect_face_tracks(
    normalized: NormalizedVideo, shots: list[tuple[int, int]], config: AnnotateConfig
) -> list[Track]:
    """Face tracks found by the built-in detector (module docstring) on every ``face_detect_every``-th frame."""
    import cv2

    cascades = _haar_cascades()
    scale = min(1.0, HAAR_MIN_FACE_PIXELS / config.min_face_size)
    transform = analysis_transform(normalized, round(normalized.width * scale))
    to_video = normalized.width / transform.width
    min_size = max(20, round(config.min_face_size * 0.8 / to_video))
    frames, detections = [], []
    buffer = np.memmap(normalized.path, mode="r")
    for index, rgb in enumerate(iter_frames(buffer, transform, name=str(normalized.path))):
        if index % config.face_detect_every:
            continue
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        frames.append(index)
        detections.append(detect_faces(gray, cascades, min_size, config.face_scale_factor) * to_video)
    pieces = []
    # Link inside each shot only: a cut must never join two people.
    for start, end in shots:
        chosen = [k for k, f in enumerate(frames) if start <= f < end]
        linked = link_detections(
            [frames[k] for k in chosen],
            [detections[k] for k in chosen],
            config.track_min_iou,
            config.max_gap_frames,
        )
        for track_frames, boxes in linked:
            for track in interpolate_track(track_frames, boxes, config.max_gap_frames):
                track = _extend(track, start, end, config.face_detect_every - 1)
                pieces.append(smooth_boxes(track, SMOOTHING_DETECTIONS * config.face_detect_every))
    return _finish(pieces, shots, config)


def _extend(track: Track, start: int, end: int, frames: int) -> Track:
    """Hold the first/last box up to ``frames`` frames (the frames between detections), inside ``[start, end)``."""
    before = min(frames, track.start - start)
    after = min(frames, end - track.end)
    boxes = np.concatenate(
        [np.repeat(track.boxes[:1], before, 0), track.boxes, np.repeat(track.boxes[-1:], after, 0)]
    )
    return Track(track.start - before, boxes, track.track_id, track.source_index)

"""Stage 4, speaking scores: one raw score per frame of every face track (TalkNet-style logits, > 0 speaking;
the model input is ``clip(raw / 3, -1, 1)``).

Import: ``pywork/scores.pckl`` through :func:`mit_dataset.talknet.load_talknet_outputs`; each source track's
logits are smoothed with :func:`mit_dataset.talknet.smooth_track_scores` (the demo's neighbour mean, never NaN
when the array is shorter than its track), placed on the frames the track lists and interpolated over the frames
the face stage filled in.

Built-in baseline (no weights beyond Silero VAD's, which ship in the ``silero-vad`` package):

- ``v(t)``: Silero speech logit of the episode's audio per frame (:func:`mit_dataset.vad.speech_logits`),
  > 0 when somebody speaks;
- ``m_i(t)``: mouth-region motion of face track ``i``: the mean absolute grey-level change between frames
  ``t - 1`` and ``t`` inside the lower-middle part of its face box (``MOUTH_REGION``, resized to 32 x 16 so
  that face size does not matter), averaged over ``MOTION_FRAMES`` frames;
- who speaks: of the faces on screen, those whose mouth moves at least ``RELATIVE_MOTION`` times as much as the
  most active mouth. ``raw_i(t) = v(t)`` for them; for the others
  ``min(v(t), SCORE_SCALE * log(r_i(t) / RELATIVE_MOTION))`` with ``r_i = m_i / max_j m_j`` (< 0, the more
  negative the stiller the mouth); then the demo's 5-frame mean.

So with one face on screen the score is the VAD's (an off-screen speaker is this baseline's known failure),
and silence is silence for every face. Measured quality is in the README (``benchmarks/bench_annotate.py``).
"""

from __future__ import annotations

import numpy as np

from ..features import SPEAKING_SCORE_SCALE
from ..frame_decoder import iter_frames
from ..talknet import load_talknet_outputs, smooth_track_scores
from ..timeseries import centred_moving_average
from .config import AnnotateConfig
from .errors import SkipVideo
from .layout import RawVideo
from .normalize import NormalizedVideo
from .shots import analysis_transform
from .tracks import Track

#: Mouth region inside a face box: (x0, x1, y0, y1) as fractions of its width / height.
MOUTH_REGION = (0.25, 0.75, 0.6, 0.95)
MOUTH_PATCH = (32, 16)
MOTION_FRAMES = 7
RELATIVE_MOTION = 0.5
#: Frames are analysed at most this wide (mouths stay tens of pixels wide in a 1080p wide shot).
MOTION_ANALYSIS_WIDTH = 960
SMOOTHING_FRAMES = 5


def import_speaking_scores(
    video: RawVideo, normalized: NormalizedVideo, tracks: list[Track]
) -> list[np.ndarray]:
    """Raw scores ``(len(track.boxes),)`` float32 per face track, from ``pywork/scores.pckl``."""
    folder = video.talknet_dir
    try:
        talknet = load_talknet_outputs(folder / "tracks.pckl", folder / "scores.pckl")
    except ValueError as error:
        raise SkipVideo("bad_annotation", str(error)) from error
    per_source = {}
    for index in {t.source_index for t in tracks}:
        source = talknet[index]
        try:
            smoothed = smooth_track_scores(source.scores, len(source.frames))
        except ValueError as error:
            raise SkipVideo("bad_annotation", f"{folder / 'scores.pckl'}: track {index}: {error}") from error
        frames = normalized.output_frames_of(source.frames)
        frames, first = np.unique(frames, return_index=True)
        per_source[index] = (frames, smoothed[first])
    scores = []
    for track in tracks:
        frames, values = per_source[track.source_index]
        scores.append(np.interp(track.frames, frames, values).astype(np.float32))
    return scores


def _mouth_patch(gray: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    import cv2

    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    a, b, c, d = MOUTH_REGION
    left, right = int(max(x1 + a * w, 0)), int(min(x1 + b * w, gray.shape[1]))
    top, bottom = int(max(y1 + c * h, 0)), int(min(y1 + d * h, gray.shape[0]))
    if right - left < 2 or bottom - top < 2:
        return None
    return cv2.resize(gray[top:bottom, left:right], MOUTH_PATCH, interpolation=cv2.INTER_AREA)


def mouth_motion(normalized: NormalizedVideo, tracks: list[Track]) -> list[np.ndarray]:
    """``m_i(t)`` per track ``(len(track.boxes),)`` float32 (grey levels, 0 at a track's first frame)."""
    import cv2

    transform = analysis_transform(normalized, MOTION_ANALYSIS_WIDTH)
    scale = transform.width / normalized.width
    motion = [np.zeros(len(t.boxes), np.float32) for t in tracks]
    active: dict[int, list[int]] = {}
    for i, track in enumerate(tracks):
        for t in range(track.start + 1, track.end):
            active.setdefault(t, []).append(i)
    previous = None
    buffer = np.memmap(normalized.path, mode="r")
    for t, rgb in enumerate(iter_frames(buffer, transform, name=str(normalized.path))):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        for i in active.get(t, ()):
            box = tracks[i].boxes[t - tracks[i].start] * scale
            now, before = _mouth_patch(gray, box), _mouth_patch(previous, box)
            if now is not None:
                motion[i][t - tracks[i].start] = float(np.abs(now - before).mean())
        previous = gray
    smoothed = []
    for values in motion:
        if len(values) > 1:
            values = values.copy()
            values[0] = values[1]
        smoothed.append(centred_moving_average(values, MOTION_FRAMES).astype(np.float32))
    return smoothed


def combine_scores(voice: np.ndarray, tracks: list[Track], motion: list[np.ndarray]) -> list[np.ndarray]:
    """The baseline's raw scores from the per-frame speech logit ``voice`` ``(F,)`` and each track's mouth
    motion (module docstring)."""
    num_frames = len(voice)
    strongest = np.zeros(num_frames)
    for track, values in zip(tracks, motion):
        np.maximum.at(strongest, track.frames, values)
    scores = []
    for track, values in zip(tracks, motion):
        v = voice[track.start : track.end]
        top = strongest[track.start : track.end]
        relative = np.where(top > 0, values / np.maximum(top, 1e-9), 1.0)
        quiet = np.minimum(v, SPEAKING_SCORE_SCALE * np.log(np.maximum(relative, 1e-6) / RELATIVE_MOTION))
        raw = np.where(relative >= RELATIVE_MOTION, v, quiet)
        scores.append(centred_moving_average(raw, SMOOTHING_FRAMES).astype(np.float32))
    return scores


def baseline_speaking_scores(
    normalized: NormalizedVideo, audio: np.ndarray, tracks: list[Track], config: AnnotateConfig
) -> list[np.ndarray]:
    """Raw scores per face track from the built-in baseline (module docstring); ``audio`` is the normalised
    video's mono track at ``config.sample_rate``."""
    from ..vad import speech_logits

    if not tracks:
        return []
    voice = speech_logits([audio], config.sample_rate, normalized.num_frames, normalized.fps)[0]
    return combine_scores(voice, tracks, mouth_motion(normalized, tracks))

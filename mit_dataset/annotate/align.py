"""Stage 8, pose-speech alignment, as the paper does it (Sec. 3.1, "Pose-Speech Alignment"): the person boxes
are the shared spatial reference.

For one clip:

1. person tracks: the clip's per-frame person boxes linked by the IoU tracker (gaps interpolated);
2. each face track goes to the person track whose box most often holds its face (at least
   :data:`FACE_IN_BOX` of the face box's area inside the person box), pairs with the most such frames first,
   one person per face; a face no person track holds gets the documented stand-in box (face box widened to 3
   face widths, down to the frame bottom) and a note in the report. A person track that does not cover every
   frame of the clip holds its nearest box;
3. per frame, each person takes the pose with the most keypoints (score >= ``pose_min_score``) inside its box,
   each pose used once, provided at least ``min_pose_fraction_in_box`` of the pose's confident keypoints lie
   there (:func:`mit_dataset.clip_folder.assign_poses`); a person without one gets zero keypoints (score 0).

Speaking scores travel with the face tracks (stage 4), so after this every person of the clip has a face track,
scores, a person box and a pose per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..clip_folder import assign_poses, stand_in_person_boxes
from .config import AnnotateConfig
from .selection import ClipSpan
from .tracks import Track, interpolate_track, link_detections

#: A face counts as inside a person box when this fraction of its area is.
FACE_IN_BOX = 0.5


@dataclass
class AlignedClip:
    """Everything per person (``P`` = the clip's faces, left to right) and frame (``F``)."""

    span: ClipSpan
    face_boxes: np.ndarray  # (P, F, 4)
    person_boxes: np.ndarray  # (P, F, 4)
    keypoints_133: np.ndarray  # (P, F, 133, 3), zeros where no pose was assigned
    speaking_score_raw: np.ndarray  # (P, F)
    notes: list[str] = field(default_factory=list)


def face_inside(faces: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """Fraction of each face box's area inside the matching person box (broadcast ``(..., 4)``)."""
    w = np.clip(
        np.minimum(faces[..., 2], persons[..., 2]) - np.maximum(faces[..., 0], persons[..., 0]), 0, None
    )
    h = np.clip(
        np.minimum(faces[..., 3], persons[..., 3]) - np.maximum(faces[..., 1], persons[..., 1]), 0, None
    )
    area = np.clip(faces[..., 2] - faces[..., 0], 0, None) * np.clip(faces[..., 3] - faces[..., 1], 0, None)
    return np.where(area > 0, w * h / np.maximum(area, 1e-9), 0.0)


def person_tracks(boxes: list[np.ndarray], start: int, config: AnnotateConfig) -> list[Track]:
    """Person tracks of a clip from its per-frame boxes (``boxes[k]`` at frame ``start + k``)."""
    frames = list(range(start, start + len(boxes)))
    tracks = []
    for track_frames, track_boxes in link_detections(
        frames, boxes, config.track_min_iou, config.max_gap_frames
    ):
        tracks += interpolate_track(track_frames, track_boxes, config.max_gap_frames)
    return tracks


def _held(track: Track, frames: np.ndarray) -> np.ndarray:
    """The track's boxes at ``frames``, holding its first/last box outside it."""
    return track.boxes[np.clip(frames - track.start, 0, len(track.boxes) - 1)]


def match_faces(face_boxes: np.ndarray, persons: list[Track], frames: np.ndarray) -> list[int]:
    """Index into ``persons`` per face (``-1``: none): most frames holding the face, one person per face."""
    counts = np.zeros((len(face_boxes), len(persons)), np.int64)
    for q, person in enumerate(persons):
        inside = (frames >= person.start) & (frames < person.end)
        if inside.any():
            held = face_inside(face_boxes[:, inside], person.box_at(frames[inside])[None])
            counts[:, q] = (held >= FACE_IN_BOX).sum(1)
    assignment = [-1] * len(face_boxes)
    used = set()
    for flat in np.argsort(-counts, axis=None, kind="stable"):
        face, person = divmod(int(flat), max(len(persons), 1))
        if not persons or counts[face, person] == 0:
            break
        if assignment[face] == -1 and person not in used:
            assignment[face] = person
            used.add(person)
    return assignment


def align_clip(
    span: ClipSpan,
    tracks: dict[int, Track],
    scores: dict[int, np.ndarray],
    boxes_per_frame: list[np.ndarray],
    poses_per_frame: list[np.ndarray],
    height: int,
    config: AnnotateConfig,
) -> AlignedClip:
    """Align one clip (module docstring). ``boxes_per_frame``/``poses_per_frame`` hold frame ``span.start + k``
    at index ``k``: person boxes ``(m, 4)`` and poses ``(k, 133, 3)``."""
    frames = np.arange(span.start, span.end)
    faces = np.stack([tracks[i].box_at(frames) for i in span.track_ids])
    raw = np.stack([scores[i][frames - tracks[i].start] for i in span.track_ids])
    persons = person_tracks(boxes_per_frame, span.start, config)
    notes = []
    person_boxes = np.empty_like(faces)
    for p, q in enumerate(match_faces(faces, persons, frames)):
        if q < 0:
            notes.append(f"face track {span.track_ids[p]}: no person box holds it; stand-in box used")
            person_boxes[p] = stand_in_person_boxes(faces[p], height)
        else:
            person_boxes[p] = _held(persons[q], frames)
    keypoints = np.zeros((len(faces), len(frames), 133, 3), np.float32)
    for k, poses in enumerate(poses_per_frame):
        chosen = assign_poses(
            list(poses), person_boxes[:, k], config.pose_min_score, config.min_pose_fraction_in_box
        )
        for p, pose in enumerate(chosen):
            if pose >= 0:
                keypoints[p, k] = poses[pose]
    return AlignedClip(span, faces, person_boxes, keypoints, raw.astype(np.float32), notes)

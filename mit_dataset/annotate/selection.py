"""Stage 5, clip selection: the runs of frames inside one shot where the same 2-4 faces are on screen.

Rule (the official thresholds are :class:`~mit_dataset.annotate.config.AnnotateConfig`'s defaults):

1. only shots at least ``min_shot_frames`` long;
2. a face counts when it is large enough: ``sqrt(median(w * h)) >= min_face_size`` over the frames considered
   (median, so that detector jitter of single frames does not break a clip); smaller faces (audience,
   background screens) neither join a clip nor split one;
3. the shot is cut wherever a counted face track starts or ends; each piece where ``min_speakers ..
   max_speakers`` counted faces are on screen throughout, that is at least ``min_clip_frames`` long and whose
   smallest face area is more than ``min_face_area_ratio`` of the largest, is a clip.

People are ordered left to right (mean face centre). Clip names: ``{source}_{video}_{start:06d}to{end:06d}``,
frames of the normalised video, end exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .config import AnnotateConfig
from .tracks import Track


@dataclass(frozen=True)
class ClipSpan:
    """Frames ``[start, end)`` of shot ``shot`` holding face tracks ``track_ids`` (left to right)."""

    start: int
    end: int
    shot: int
    track_ids: tuple[int, ...]

    @property
    def num_frames(self) -> int:
        return self.end - self.start

    def name(self, source: str, video: str) -> str:
        return f"{source}_{video}_{self.start:06d}to{self.end:06d}"


def face_size(track: Track, start: int | None = None, end: int | None = None) -> float:
    """``sqrt(median(w * h))`` of the track's face boxes over ``[start, end)`` (default: the whole track)."""
    boxes = track.slice(track.start if start is None else start, track.end if end is None else end).boxes
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return float(np.sqrt(np.median(areas))) if len(areas) else 0.0


def select_clips(shots: list[tuple[int, int]], tracks: list[Track], config: AnnotateConfig) -> list[ClipSpan]:
    """The clips of one video (rule in the module docstring), in time order."""
    clips = []
    for shot, (start, end) in enumerate(shots):
        if end - start < config.min_shot_frames:
            continue
        members = [
            t for t in tracks if t.start >= start and t.end <= end and face_size(t) >= config.min_face_size
        ]
        cuts = sorted({start, end} | {b for t in members for b in (t.start, t.end)})
        for a, b in pairwise(cuts):
            if b - a < config.min_clip_frames:
                continue
            present = [
                t
                for t in members
                if t.start <= a and t.end >= b and face_size(t, a, b) >= config.min_face_size
            ]
            if not config.min_speakers <= len(present) <= config.max_speakers:
                continue
            areas = [face_size(t, a, b) ** 2 for t in present]
            if min(areas) <= config.min_face_area_ratio * max(areas):
                continue
            present.sort(key=lambda t: float(np.mean(t.slice(a, b).boxes[:, [0, 2]])))
            clips.append(ClipSpan(a, b, shot, tuple(t.track_id for t in present)))
    return clips

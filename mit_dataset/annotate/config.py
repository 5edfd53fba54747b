"""Every threshold of the collection pipeline in one place, with the official values as defaults.

The clip-selection defaults are the authors' (REFERENCE.md, "Official clip selection"): co-occurring face
tracks, face area >= 64 x 64, face-area ratio between the people of a clip > 0.5, >= 125 frames (5 s), 2-4
people; pose-to-person assignment counts keypoints with score >= 0.4. Everything else is ours and says why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from ..clip_folder import ASSIGN_MIN_SCORE
from ..features import FPS, MAX_SPEAKERS, MIN_SPEAKERS, SAMPLING_RATE
from ..video_io import X264_PRESETS

#: How each stage finds its input: ``"import"`` external files (error when absent), ``"builtin"`` the offline
#: models shipped with the project, ``"auto"`` import when the files are there, else built in.
SOURCES = ("auto", "import", "builtin")


@dataclass(frozen=True)
class AnnotateConfig:
    """Parameters of :func:`mit_dataset.annotate.annotate` (all in frames of the normalised 25 fps video,
    pixels of its frames, or plain ratios)."""

    # 1. normalise
    fps: float = FPS
    sample_rate: int = SAMPLING_RATE
    #: A video whose frame steps stray from whole multiples of the nominal step (by more than a quarter step)
    #: in more than this fraction of frames has a variable frame rate and is skipped: re-timing it by frame
    #: order would drift its audio. Occasional whole-frame timestamp gaps (stream-copy cuts) are fine.
    max_irregular_steps: float = 0.05
    #: x264 preset of the normalised copy when the video must be re-encoded (gaps, another frame rate; a
    #: constant-rate H.264 source is stream-copied): the clips are cut from it with their own encode, so speed
    #: wins. At ``crf`` 18 "ultrafast" writes a 640x360 frame in 0.7 ms of CPU against 1.9 ms for "veryfast"
    #: and decodes in 0.23 ms against 0.40, for ~3.5x the cache's disk; the clips cut from it come out no
    #: worse (PSNR to the source 49.2 dB against 47.8 through a "veryfast" copy).
    normalize_preset: str = "ultrafast"
    # 2. shots (PySceneDetect ContentDetector)
    shot_threshold: float = 27.0  # ContentDetector's default HSV-change threshold
    shot_min_frames: int | None = None  # None: min_clip_frames (a shorter shot cannot hold a clip)
    shot_analysis_width: int = 256  # frames are scaled to this width for shot detection
    # 3. face tracks
    face_tracks: str = "auto"
    max_gap_frames: int = 10  # gaps a track bridges by interpolation (the TalkNet demo's numFailedDet)
    min_track_frames: int = 10  # shorter tracks are dropped (the TalkNet demo's minTrack)
    track_min_iou: float = 0.3
    face_detect_every: int = (
        5  # built-in detector: frames between detections (0.2 s; tracks are interpolated)
    )
    face_scale_factor: float = 1.15  # built-in detector: Haar pyramid step
    # 4. speaking scores
    speaking_scores: str = "auto"
    # 5. clip selection (official)
    min_clip_frames: int = 125
    min_face_size: float = 64.0
    min_face_area_ratio: float = 0.5
    min_speakers: int = MIN_SPEAKERS
    max_speakers: int = MAX_SPEAKERS
    # 6. person boxes
    person_boxes: str = "auto"
    min_person_confidence: float = 0.25  # YOLOv7 detect.py's default --conf-thres
    # 7-8. poses and their alignment
    pose_min_score: float = ASSIGN_MIN_SCORE
    #: A pose goes to a person only when at least this fraction of its confident keypoints lies in the box:
    #: otherwise a person whose own pose is missing would take a neighbour's stray hand.
    min_pose_fraction_in_box: float = 0.5
    # 9. splits (see mit_dataset.annotate.splits)
    challenging_fraction: float = 0.1
    easy_fraction: float = 0.1
    crf: int = 18

    def __post_init__(self) -> None:
        for name in ("face_tracks", "speaking_scores", "person_boxes"):
            if getattr(self, name) not in SOURCES:
                raise ValueError(
                    f"AnnotateConfig.{name} must be one of {SOURCES}, got {getattr(self, name)!r}"
                )
        if self.normalize_preset not in X264_PRESETS:
            raise ValueError(
                f"AnnotateConfig.normalize_preset must be one of {X264_PRESETS}, got {self.normalize_preset!r}"
            )
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError(
                f"need 1 <= min_speakers <= max_speakers, got {self.min_speakers}, {self.max_speakers}"
            )
        if self.min_clip_frames < 1 or self.fps <= 0 or self.sample_rate <= 0:
            raise ValueError("min_clip_frames, fps and sample_rate must be positive")
        if not 0 <= self.challenging_fraction + self.easy_fraction <= 1:
            raise ValueError("challenging_fraction + easy_fraction must lie in [0, 1]")

    @property
    def min_shot_frames(self) -> int:
        return self.min_clip_frames if self.shot_min_frames is None else self.shot_min_frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AnnotateConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown annotate settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    def fingerprint(self, *names: str) -> str:
        """Short hash of the named settings (all when none named): a stage's cache key."""
        chosen = self.to_dict() if not names else {name: getattr(self, name) for name in names}
        return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:16]

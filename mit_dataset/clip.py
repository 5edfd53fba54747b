"""In-memory MIT clip: the one record every producer (synthetic generator, clip-folder importer) fills
and every writer (Hub layout, builder) consumes. :meth:`ClipRecord.validate` is the single place where
bad annotations are rejected or repaired, so no writer can emit a half-valid row.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .features import (
    DIFFICULTIES,
    FPS,
    MAX_SPEAKERS,
    MIN_SPEAKERS,
    SAMPLING_RATE,
    SPLITS,
    SUBSETS,
    speaking_score_from_raw,
)
from .keypoints import NUM_KEYPOINTS, NUM_WHOLEBODY_KEYPOINTS, clip_boxes
from .media import probe_media
from .safe_names import UnsafeNameError, check_name


class ClipValidationError(ValueError):
    """A clip's annotations are inconsistent; the message names the clip, the person and the field."""


#: Audio may be shorter than the video by at most this many seconds (encoder padding) before it is an error.
AUDIO_LENGTH_TOLERANCE_S = 0.05


@dataclass
class PersonTrack:
    """One person's per-frame annotations (F = number of frames of the clip)."""

    person_id: str
    identity: str
    keypoints: np.ndarray  # (F, 59, 3) float32
    boxes: np.ndarray  # (F, 4) xyxy
    face_boxes: np.ndarray  # (F, 4) xyxy
    speaking_score_raw: np.ndarray  # (F,)
    mask_rle: list[str]  # F COCO RLE counts strings at the clip's (height, width)
    keypoints_133: np.ndarray | None = None  # (F, 133, 3) where the source gave them

    @property
    def speaking_score(self) -> np.ndarray:
        return speaking_score_from_raw(self.speaking_score_raw)


@dataclass
class ClipRecord:
    """One MIT clip: metadata, the mp4 on disk, mono 16 kHz audio and the persons in it."""

    clip_id: str
    source: str
    subset: str
    split: str
    video_path: Path
    audio: np.ndarray  # (S,) float32 mono at SAMPLING_RATE
    num_frames: int
    width: int
    height: int
    persons: list[PersonTrack]
    difficulty: str = ""
    fps: float = FPS
    metadata: dict = field(default_factory=dict)

    def _fail(self, what: str) -> ClipValidationError:
        return ClipValidationError(f"clip {self.clip_id!r}: {what}")

    def validate(self) -> ClipRecord:
        """Check every field; clip boxes that leave the frame (documented repair); raise otherwise.

        The mp4 is probed (:func:`~mit_dataset.media.probe_media`): it must decode, its decoded frame count,
        displayed size and nominal fps must equal ``num_frames``, ``width`` x ``height`` and ``fps``, and it
        must be what :func:`~mit_dataset.media.normalize_media` writes (constant rate from time 0, no
        rotation, any audio 16 kHz mono aligned), so every decoder agrees with the row.
        """
        try:  # clip ids become file names (clip folders, predictions, overlays): one rule for all of them
            check_name(self.clip_id, what="field 'clip_id'")
        except UnsafeNameError as error:
            raise ClipValidationError(f"clip {self.clip_id!r}: {error}") from error
        if self.subset not in SUBSETS:
            raise self._fail(f"field 'subset' is {self.subset!r}, expected one of {SUBSETS}")
        if self.split not in SPLITS:
            raise self._fail(f"field 'split' is {self.split!r}, expected one of {SPLITS}")
        expected_difficulty = DIFFICULTIES if self.split == "test" else ("",)
        if self.difficulty not in expected_difficulty:
            raise self._fail(
                f"field 'difficulty' is {self.difficulty!r}, expected one of {expected_difficulty} "
                f"for split {self.split!r}"
            )
        if not MIN_SPEAKERS <= len(self.persons) <= MAX_SPEAKERS:
            raise self._fail(
                f"field 'persons' has {len(self.persons)} people, expected {MIN_SPEAKERS} to {MAX_SPEAKERS}"
            )
        if len({p.person_id for p in self.persons}) != len(self.persons):
            raise self._fail("field 'persons' has duplicate person_id values")
        if self.num_frames <= 0 or self.width <= 0 or self.height <= 0:
            raise self._fail(
                f"num_frames/width/height must be positive, got {self.num_frames}/{self.width}/{self.height}"
            )
        self._validate_video()
        self._validate_audio()
        for person in self.persons:
            self._validate_person(person)
        return self

    def _validate_video(self) -> None:
        path = Path(self.video_path)
        if not path.is_file():
            raise self._fail(f"field 'video': file {str(path)!r} does not exist")
        try:
            info = probe_media(path)
        except ValueError as error:
            raise self._fail(f"field 'video': {error}") from error
        if info.num_frames != self.num_frames:
            raise self._fail(
                f"field 'video': {str(path)!r} has {info.num_frames} frames, expected num_frames={self.num_frames}"
            )
        if (info.width, info.height) != (self.width, self.height):
            raise self._fail(
                f"field 'video': {str(path)!r} is {info.width}x{info.height}, expected "
                f"width x height = {self.width}x{self.height}"
            )
        if abs(info.fps - self.fps) > 0.01:
            raise self._fail(
                f"field 'video': {str(path)!r} runs at {info.fps:g} fps, expected fps={self.fps:g}"
            )
        reasons = info.normalization_reasons(SAMPLING_RATE)
        if reasons:  # every decoder must agree with the row: constant rate from 0, no rotation
            raise self._fail(
                f"field 'video': {str(path)!r}: {'; '.join(reasons)}; rewrite it with "
                "mit_dataset.media.normalize_media (clip-folder import does)"
            )

    def _validate_audio(self) -> None:
        audio = np.asarray(self.audio)
        if audio.ndim != 1:
            raise self._fail(f"field 'audio' must be mono (S,), got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise self._fail("field 'audio' contains NaN or inf samples")
        needed = self.num_frames / self.fps * SAMPLING_RATE
        if audio.shape[0] < needed - AUDIO_LENGTH_TOLERANCE_S * SAMPLING_RATE:
            raise self._fail(
                f"field 'audio' has {audio.shape[0]} samples ({audio.shape[0] / SAMPLING_RATE:.3f} s) but "
                f"{self.num_frames} frames at {self.fps} fps need {needed / SAMPLING_RATE:.3f} s"
            )

    def _validate_person(self, person: PersonTrack) -> None:
        where = f"person {person.person_id!r}"
        frames = self.num_frames
        shapes = {
            "keypoints": (person.keypoints, (frames, NUM_KEYPOINTS, 3)),
            "boxes": (person.boxes, (frames, 4)),
            "face_boxes": (person.face_boxes, (frames, 4)),
            "speaking_score_raw": (person.speaking_score_raw, (frames,)),
        }
        if person.keypoints_133 is not None:
            shapes["keypoints_133"] = (person.keypoints_133, (frames, NUM_WHOLEBODY_KEYPOINTS, 3))
        for name, (array, shape) in shapes.items():
            array = np.asarray(array)
            if array.shape != shape:
                raise self._fail(f"{where}, field {name!r} has shape {array.shape}, expected {shape}")
            if not np.isfinite(array).all():
                bad = np.argwhere(~np.isfinite(array))[0].tolist()
                raise self._fail(f"{where}, field {name!r} contains NaN/inf (first at index {bad})")
        if len(person.mask_rle) != frames:
            raise self._fail(
                f"{where}, field 'mask_rle' has {len(person.mask_rle)} frames, expected {frames}"
            )
        if not all(isinstance(counts, str) for counts in person.mask_rle):
            raise self._fail(f"{where}, field 'mask_rle' must hold COCO RLE counts strings")
        person.boxes = clip_boxes(person.boxes, self.width, self.height)
        person.face_boxes = clip_boxes(person.face_boxes, self.width, self.height)

    def to_row(self) -> dict:
        """The Parquet row for :data:`~mit_dataset.features.MIT_FEATURES`, with video and audio bytes embedded."""
        audio_buffer = io.BytesIO()
        sf.write(audio_buffer, np.asarray(self.audio, dtype=np.float32), SAMPLING_RATE, format="FLAC")
        return {
            "clip_id": self.clip_id,
            "source": self.source,
            "subset": self.subset,
            "split": self.split,
            "difficulty": self.difficulty,
            "num_speakers": len(self.persons),
            "fps": float(self.fps),
            "num_frames": int(self.num_frames),
            "width": int(self.width),
            "height": int(self.height),
            # Bytes only, no "path": datasets' Video/Audio.encode_example keep just the path (and drop the
            # bytes) whenever that path names an existing file in the current directory.
            "video": {"bytes": Path(self.video_path).read_bytes(), "path": None},
            "audio": {"bytes": audio_buffer.getvalue(), "path": None},
            "persons": [_person_row(p) for p in self.persons],
        }


def _person_row(person: PersonTrack) -> dict:
    """Nested Python lists, not numpy arrays: ``Features.encode_example`` walks multi-dimensional numpy
    arrays element by element, but passes lists straight to Arrow (measured ~2x faster writes)."""
    keypoints_133 = person.keypoints_133
    if keypoints_133 is None:
        keypoints_133 = np.zeros((0, NUM_WHOLEBODY_KEYPOINTS, 3), np.float32)

    def as_list(array) -> list:
        return np.asarray(array, np.float32).tolist()

    return {
        "person_id": person.person_id,
        "identity": person.identity,
        "keypoints": as_list(person.keypoints),
        "keypoints_133": as_list(keypoints_133),
        "boxes": as_list(person.boxes),
        "face_boxes": as_list(person.face_boxes),
        "speaking_score": person.speaking_score.tolist(),
        "speaking_score_raw": as_list(person.speaking_score_raw),
        "mask_rle": list(person.mask_rle),
    }

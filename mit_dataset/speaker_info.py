"""One person's entry of an official ``speaker_info*.json``, parsed and checked field by field.

Every problem is a :class:`~mit_dataset.clip.ClipValidationError` naming the clip, the person, the file and
the field as the file spells it (``speaking_score``, ``face_track``, ``instance_bbox``, ``clip_range``).

Fields (see :mod:`mit_dataset.clip_folder`): ``face_track`` ``[[x1, y1, x2, y2], ...]`` (required),
``speaking_score`` ``[s, ...]`` raw logits (optional: TalkNet outputs can stand in), ``instance_bbox``
``[x1, y1, x2, y2]`` (optional, static), ``clip_range`` ``[first, last]`` 1-based inclusive (optional),
``person_id`` / ``identity`` (optional). Others (``speak``, ``listen``, ``period_num``) are ignored: they are
derived from the scores.

NaN speaking scores: the authors' WhisperV smoothing writes NaN where its window runs past a track's end.
The repair is the TalkNet import's rule (:mod:`mit_dataset.talknet`): positions past the last finite score
reuse it (and positions before the first finite score reuse that one). A NaN between finite scores is not a
smoothing artefact and is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clip import ClipValidationError


@dataclass
class SpeakerEntry:
    """Arrays on the source timeline (``clip_range`` applied, not yet realigned to decoded frames)."""

    person_id: str
    identity: str | None
    where: str  # "clip 'c': person 'p0'"
    face_track: np.ndarray  # (N, 4) float32 xyxy
    speaking_score: np.ndarray | None  # (M,) float32, finite
    instance_bbox: np.ndarray | None  # (4,) float32 xyxy


def _numbers(value, shape_tail: tuple[int, ...], where: str, field: str, expected: str) -> np.ndarray:
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise ClipValidationError(f"{where} field {field!r} must be {expected}, got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ClipValidationError(f"{where} field {field!r} must be {expected} ({error})") from error
    if array.ndim != len(shape_tail) + 1 or array.shape[1:] != shape_tail:
        raise ClipValidationError(f"{where} field {field!r} has shape {array.shape}, expected {expected}")
    return array


def check_box_order(boxes: np.ndarray, where: str, field: str) -> None:
    """Raise when a finite box has ``x2 < x1`` or ``y2 < y1`` (naming the first such frame)."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        first = int(np.flatnonzero(inverted)[0])
        raise ClipValidationError(
            f"{where} field {field!r} has an inverted box {boxes[first].tolist()} at index {first} "
            "(expected [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2)"
        )


def _clip_range(entry: dict, where: str) -> tuple[int, int] | None:
    value = entry.get("clip_range")
    if value is None:
        return None
    numbers = value if isinstance(value, (list, tuple)) else None
    if numbers is None or len(numbers) != 2 or not all(isinstance(v, (int, float)) for v in numbers):
        raise ClipValidationError(
            f"{where} field 'clip_range' must be [first, last] (1-based frame numbers), got {value!r}"
        )
    first, last = (int(v) for v in numbers)
    if first != numbers[0] or last != numbers[1] or first < 1 or last < first:
        raise ClipValidationError(
            f"{where} field 'clip_range' {value!r} must be whole numbers with 1 <= first <= last"
        )
    return first, last


def _in_range(values: np.ndarray, span: tuple[int, int] | None, where: str, field: str) -> np.ndarray:
    if span is None:
        return values
    first, last = span
    if last > len(values):
        raise ClipValidationError(
            f"{where} field 'clip_range' [{first}, {last}] runs past the end of {field!r} "
            f"({len(values)} entries)"
        )
    return values[first - 1 : last]


def repair_score_nans(scores: np.ndarray, where: str) -> np.ndarray:
    """Fill NaN runs at the ends with the nearest finite score (module docstring); raise on inner NaN."""
    finite = np.isfinite(scores)
    if finite.all():
        return scores
    if not finite.any():
        raise ClipValidationError(f"{where} field 'speaking_score' has no finite value")
    first, last = np.flatnonzero(finite)[[0, -1]]
    inner = np.flatnonzero(~finite[first : last + 1])
    if inner.size:
        raise ClipValidationError(
            f"{where} field 'speaking_score' has NaN/inf at index {first + int(inner[0])}, between finite "
            "scores (only NaN runs at the track ends are repaired)"
        )
    repaired = scores.copy()
    repaired[:first], repaired[last + 1 :] = scores[first], scores[last]
    return repaired


def parse_speaker_entry(entry, index: int, clip: str, file: str) -> SpeakerEntry:
    """Check one person's entry of ``file`` (a speaker info JSON) of clip ``clip``."""
    if not isinstance(entry, dict):
        raise ClipValidationError(f"clip {clip!r}: {file} entry {index} must be an object, got {entry!r:.40}")
    person_id = str(entry.get("person_id", f"p{index}"))
    where = f"clip {clip!r}: person {person_id!r}"
    span = _clip_range(entry, f"{where}: {file}")
    if "face_track" not in entry:
        raise ClipValidationError(f"{where}: {file} field 'face_track' is missing")
    face = _numbers(entry["face_track"], (4,), f"{where}: {file}", "face_track", "[[x1, y1, x2, y2], ...]")
    face = _in_range(face, span, f"{where}: {file}", "face_track")
    check_box_order(face, f"{where}: {file}", "face_track")
    scores = None
    if "speaking_score" in entry:
        scores = _numbers(
            entry["speaking_score"], (), f"{where}: {file}", "speaking_score", "[s, ...] numbers"
        )
        scores = repair_score_nans(
            _in_range(scores, span, f"{where}: {file}", "speaking_score"), f"{where}: {file}"
        )
    box = None
    if "instance_bbox" in entry:
        box = _numbers(
            [entry["instance_bbox"]] if isinstance(entry["instance_bbox"], list) else entry["instance_bbox"],
            (4,), f"{where}: {file}", "instance_bbox", "[x1, y1, x2, y2] numbers",
        )[0]  # fmt: skip
        check_box_order(box, f"{where}: {file}", "instance_bbox")
    identity = entry.get("identity")
    return SpeakerEntry(person_id, None if identity is None else str(identity), where, face, scores, box)

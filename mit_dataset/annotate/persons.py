"""Stage 6, person boxes per frame: imported YOLO detections, or derived from the poses.

Import: YOLOv7 ``detect.py --save-txt [--save-conf]`` writes one text file per frame, a line per detection
``class x_centre y_centre width height [confidence]`` normalised by the frame size; class 0 is a person. Files
are numbered like the pose files (the last number in the name is the 1-based raw frame); a frame without a
file has no detection. Person detections with confidence >= ``min_person_confidence`` are kept.

Derived: the box of each pose's keypoints with score >= ``pose_min_score`` (at least
:data:`MIN_POSE_POINTS` of them), widened by :data:`POSE_BOX_MARGIN` of its size on every side (keypoints
sit inside the silhouette: wrists, not fingertips' skin; the crown of the head has no keypoint).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import SkipVideo

MIN_POSE_POINTS = 10
POSE_BOX_MARGIN = 0.1
MAX_LABEL_FILE_BYTES = 2**20
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def label_files(folder: Path) -> dict[int, Path]:
    """``{0-based raw frame: file}`` of the ``*.txt`` files in ``folder``."""
    files = {}
    for path in folder.glob("*.txt"):
        match = _NUMBER.search(path.stem)
        if match is None or int(match.group(1)) < 1:
            raise SkipVideo("bad_annotation", f"{path}: label file name has no 1-based frame number")
        files[int(match.group(1)) - 1] = path
    return files


def read_yolo_file(path: Path, width: int, height: int, min_confidence: float) -> np.ndarray:
    """Person boxes ``(k, 4)`` xyxy pixels of one YOLO label file."""
    if path.stat().st_size > MAX_LABEL_FILE_BYTES:
        raise SkipVideo(
            "bad_annotation", f"{path}: {path.stat().st_size} bytes, more than a label file holds"
        )
    boxes = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SkipVideo("bad_annotation", f"{path}: not a YOLO label file ({error})") from error
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            values = []
        if len(values) not in (5, 6) or not np.isfinite(values).all() or values[0] != int(values[0]):
            raise SkipVideo(
                "bad_annotation",
                f"{path}, line {number}: expected 'class xc yc w h [conf]' numbers, got {line[:80]!r}",
            )
        cls, xc, yc, w, h = values[:5]
        confidence = values[5] if len(values) == 6 else 1.0
        if not (0 <= xc <= 1 and 0 <= yc <= 1 and 0 <= w <= 1 and 0 <= h <= 1):
            raise SkipVideo(
                "bad_annotation", f"{path}, line {number}: coordinates must be normalised to [0, 1]"
            )
        if int(cls) == 0 and confidence >= min_confidence:
            boxes.append(
                [(xc - w / 2) * width, (yc - h / 2) * height, (xc + w / 2) * width, (yc + h / 2) * height]
            )
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def read_person_boxes(
    folder: Path, source_frames: np.ndarray, width: int, height: int, min_confidence: float
) -> list[np.ndarray]:
    """Person boxes ``(k, 4)`` per entry of ``source_frames``, from the YOLO files in ``folder``."""
    files = label_files(folder)
    cache: dict[int, np.ndarray] = {}
    result = []
    for frame in np.asarray(source_frames).tolist():
        if frame not in cache:
            path = files.get(frame)
            cache[frame] = (
                read_yolo_file(path, width, height, min_confidence) if path else np.zeros((0, 4), np.float32)
            )
        result.append(cache[frame])
    return result


def boxes_from_poses(poses: np.ndarray, min_score: float) -> np.ndarray:
    """Person boxes ``(k', 4)`` of the ``(k, 133, 3)`` poses of one frame (module docstring)."""
    boxes = []
    for pose in poses:
        points = pose[pose[:, 2] >= min_score, :2]
        if len(points) < MIN_POSE_POINTS:
            continue
        low, high = points.min(0), points.max(0)
        margin = POSE_BOX_MARGIN * (high - low)
        boxes.append(np.concatenate([low - margin, high + margin]))
    return np.asarray(boxes, np.float32).reshape(-1, 4)

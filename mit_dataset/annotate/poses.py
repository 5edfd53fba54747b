"""Stage 7, poses: Sapiens pose JSON per frame (both layouts, see :mod:`mit_dataset.clip_folder`), read only
for the frames of the selected clips; 133 COCO-WholeBody points per instance, converted to the MIT
59-point subset when the clip is written.

File names: the last number in a file's name is the 1-based frame number of the raw video (the official
pipeline names them after FFmpeg's ``frames/output_%04d.png``). A frame without a file has no pose.

No built-in pose estimator: none whose weights ship inside its PyPI package installs beside torch 2.13 CPU
(mediapipe's wheel holds no model file; OpenCV ships no pose model; MMPose, Sapiens, RTMPose, DWPose and
OpenPose all download their checkpoints). A video without ``pose/`` is skipped with the reason ``no_poses``.

Hostile files: each file is at most :data:`MAX_POSE_FILE_BYTES`; deep nesting, non-numbers, wrong point
counts and NaN/inf are refused with the file's name (``bad_annotation``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..clip_folder import read_sapiens_file
from .errors import SkipVideo
from .layout import RawVideo

MAX_POSE_FILE_BYTES = 16 * 2**20
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def pose_files(folder: Path) -> dict[int, Path]:
    """``{0-based raw frame: file}`` of the ``*.json`` files in ``folder`` (numbered as the module says)."""
    files = {}
    for path in folder.glob("*.json"):
        match = _NUMBER.search(path.stem)
        if match is None or int(match.group(1)) < 1:
            raise SkipVideo(
                "bad_annotation", f"{path}: pose file name has no 1-based frame number (output_%04d.json)"
            )
        frame = int(match.group(1)) - 1
        if frame in files:
            raise SkipVideo("bad_annotation", f"{path}: frame {frame + 1} already has {files[frame].name}")
        files[frame] = path
    return files


def read_pose_file(path: Path, video: str) -> np.ndarray:
    """``(k, 133, 3)`` float32 instances of one Sapiens file (``(0, 133, 3)`` for none)."""
    where = f"video {video!r}: field 'pose' file {path}"
    try:
        if path.stat().st_size > MAX_POSE_FILE_BYTES:
            raise SkipVideo(
                "bad_annotation", f"{where}: {path.stat().st_size} bytes, more than a pose file holds"
            )
        poses = read_sapiens_file(path, video, kind="video")
    except RecursionError as error:
        raise SkipVideo("bad_annotation", f"{where} is not a Sapiens pose (nested too deeply)") from error
    except ValueError as error:
        raise SkipVideo("bad_annotation", str(error)) from error
    stacked = np.stack(poses).astype(np.float32) if poses else np.zeros((0, 133, 3), np.float32)
    if not np.isfinite(stacked).all():
        raise SkipVideo("bad_annotation", f"{where}: pose keypoints contain NaN/inf")
    return stacked


def read_poses(video: RawVideo, source_frames: np.ndarray) -> list[np.ndarray]:
    """Instances ``(k, 133, 3)`` per entry of ``source_frames`` (raw-video frames)."""
    folder = video.pose_dir
    if not folder.is_dir():
        raise SkipVideo(
            "no_poses",
            f"{folder}: no Sapiens pose JSON; MIT clips need poses and no pose estimator with shipped weights "
            "exists to run instead (run Sapiens and put output_%04d.json files there)",
        )
    files = pose_files(folder)
    cache: dict[int, np.ndarray] = {}
    result = []
    for frame in np.asarray(source_frames).tolist():
        if frame not in cache:
            path = files.get(frame)
            cache[frame] = read_pose_file(path, video.video) if path else np.zeros((0, 133, 3), np.float32)
        result.append(cache[frame])
    return result

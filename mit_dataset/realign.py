"""Bring a clip's per-frame annotations onto its normalised media (DESIGN decision 9).

Import re-times a clip's video by frame order and applies its display rotation
(:func:`mit_dataset.media.normalize_media`); the annotations of the clip must follow:

- **Time.** An annotation array with one entry per decoded frame (or one short: the last entry is repeated,
  the documented repair of the partial release's off-by-one slicing) is taken in order. Any other length is
  read as sampled on the clip's *timeline* at the nominal rate from time 0 (the authors cut per-period
  arrays from the whole video's tracks, then cut the video with stream copy, which loses frames at the start
  and leaves timestamp gaps): decoded frame ``k`` takes entry ``round(t_k * fps)``, ``t_k`` its presentation
  time (:meth:`~mit_dataset.media.MediaInfo.timeline_indices`). An array too short for that is an error.
- **Rotation.** Annotations are taken to be in the orientation of the stored pixels (what a pose estimator or
  face tracker reading the raw frames saw) and rotated with the frames, unless they only fit the displayed
  frame (then they were made on displayed frames and are kept). Coordinates are continuous pixels
  (``[0, W] x [0, H]``); a turn of 90 degrees counter-clockwise maps ``(x, y)`` to ``(y, W - x)``, as
  ``np.rot90`` moves pixels.
"""

from __future__ import annotations

import numpy as np

from .clip import ClipValidationError
from .media import MediaInfo

#: Annotations may exceed the frame by this fraction of its size and still "fit" it (detector boxes do).
FIT_SLACK = 0.05


def source_indices(
    length: int, num_frames: int, info: MediaInfo, what: str, unit: str = "frames"
) -> np.ndarray:
    """``(num_frames,)`` indices into an annotation array of ``length`` entries for the decoded frames of the
    clip described by ``info`` (rules in the module docstring).

    Raises:
        ClipValidationError: naming ``what`` with the lengths that would have been accepted.
    """
    frames = np.arange(num_frames)
    if length == num_frames:
        return frames
    if length == num_frames - 1 and length > 0:
        return np.minimum(frames, length - 1)
    timeline = np.maximum(info.timeline_indices(), 0)
    irregular = not np.array_equal(timeline, frames)
    if irregular and len(timeline) == num_frames and length >= timeline[-1] > 0:
        return np.minimum(timeline, length - 1)  # entry == length: the one-short repair at the end
    accepted = f"{num_frames} (or {num_frames - 1}, repaired)"
    if irregular:
        accepted += (
            f", or at least {timeline[-1]} on the clip's timeline (video starts at {info.video_start:.3f} s"
            f"{', with timestamp gaps' if info.has_gaps else ''})"
        )
    raise ClipValidationError(f"{what} has {length} {unit}, expected {accepted}")


def _turns(info: MediaInfo) -> int:
    return info.rotation // 90


def stored_size(info: MediaInfo) -> tuple[int, int]:
    """``(width, height)`` of the stored pixels (before the display rotation)."""
    return (info.width, info.height) if _turns(info) % 2 == 0 else (info.height, info.width)


def _fits(points: np.ndarray, width: float, height: float) -> bool:
    if points.size == 0:
        return True
    return bool(
        points[..., 0].max() <= width * (1 + FIT_SLACK) and points[..., 1].max() <= height * (1 + FIT_SLACK)
    )


def annotations_need_rotation(info: MediaInfo, points: np.ndarray, what: str) -> bool:
    """Whether annotation points ``(..., 2)`` (x, y) are in the stored orientation and must be rotated.

    Raises:
        ClipValidationError: they fit neither the stored nor the displayed frame.
    """
    if _turns(info) == 0:
        return False
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if _fits(points, *stored_size(info)):
        return True
    if _fits(points, info.width, info.height):
        return False
    raise ClipValidationError(
        f"{what}: coordinates reach x={points[:, 0].max():.0f}, y={points[:, 1].max():.0f}, outside both the "
        f"stored {'x'.join(map(str, stored_size(info)))} frame and the displayed {info.width}x{info.height} "
        f"frame (the video has a {info.rotation}-degree display rotation)"
    )


def rotate_points(xy: np.ndarray, info: MediaInfo) -> np.ndarray:
    """Stored-orientation ``(..., 2+)`` points (extra columns such as scores kept) -> displayed orientation."""
    xy = np.array(xy, np.float32, copy=True)
    width, height = stored_size(info)
    x, y = xy[..., 0].copy(), xy[..., 1].copy()
    turns = _turns(info)
    if turns == 1:
        xy[..., 0], xy[..., 1] = y, width - x
    elif turns == 2:
        xy[..., 0], xy[..., 1] = width - x, height - y
    elif turns == 3:
        xy[..., 0], xy[..., 1] = height - y, x
    return xy


def rotate_boxes(boxes: np.ndarray, info: MediaInfo) -> np.ndarray:
    """Stored-orientation ``(..., 4)`` xyxy boxes -> displayed orientation (corners re-sorted)."""
    boxes = np.asarray(boxes, np.float32)
    corners = rotate_points(boxes.reshape(*boxes.shape[:-1], 2, 2), info)
    return np.concatenate([corners.min(-2), corners.max(-2)], axis=-1).astype(np.float32)

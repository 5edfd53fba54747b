"""Video inputs for the benchmark metrics: a path (probed with :mod:`mit_dataset.video_io`, decoded in one
streaming pass with PyAV) or an array.

Public API (stable; the ``mit-bench`` runner and the metric modules call it):

- ``VideoInput``: ``str | os.PathLike | bytes | np.ndarray | torch.Tensor``. Arrays are ``(F, H, W, 3)`` RGB,
  uint8 or float (the caller states the data range of float arrays).
- ``describe(video) -> str``: a short name for error messages.
- ``num_video_frames(video) -> int``.
- ``iter_frame_chunks(video, chunk_size, num_frames=None, size=None) -> Iterator[np.ndarray]``: consecutive
  chunks covering the whole video, so a 1080p clip is never held in memory whole; ``size=(height, width)``
  brings the frames to that size with the project's geometry (:meth:`FrameTransform.cover`: scale to cover,
  centre crop; mp4 frames are scaled by FFmpeg while converted from YUV, as the training view does). Decoding
  uses torch's thread count (``torch.set_num_threads``), so one setting bounds a whole evaluation.
- ``check_pair(prediction, reference, truncate=False) -> int``: the number of frames to compare; raises
  ``ValueError`` naming both videos when frame counts differ (unless ``truncate``).
- ``transform_frames(frames, transform) -> np.ndarray``: ``(N, H, W, 3)`` frames through a
  :class:`FrameTransform` (bilinear, antialiased), as arrays.
- ``check_frame_counts(what, count, other, other_count, truncate=False) -> int``: the same rule for a video
  against annotations (speaker sync) or any other pairing.
- ``resize_frames(frames, height, width, antialias=False) -> torch.Tensor``: bilinear float resize of
  ``(N, C, H, W)`` frames (``F.interpolate``, ``align_corners=False``: the FVD reference preprocessing).

Frame counts are always *decoded* frames (:func:`mit_dataset.video_io.probe_video`), never a container's
header count, which stream-copy cuts get wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mit_dataset.geometry import FrameTransform
from mit_dataset.video_io import iter_video_frames, probe_video

VideoInput = str | os.PathLike | bytes | np.ndarray | torch.Tensor


def _is_array(video) -> bool:
    return isinstance(video, (np.ndarray, torch.Tensor))


def describe(video: VideoInput) -> str:
    if isinstance(video, bytes):
        return "<video bytes>"
    if _is_array(video):
        return f"<array {tuple(video.shape)}>"
    return str(video)


def _as_array(video) -> np.ndarray:
    array = video.detach().cpu().numpy() if isinstance(video, torch.Tensor) else np.asarray(video)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"video array must be (F, H, W, 3) RGB, got shape {array.shape}")
    return array


def num_video_frames(video: VideoInput) -> int:
    if _is_array(video):
        return int(_as_array(video).shape[0])
    return probe_video(video).num_frames


def iter_frame_chunks(
    video: VideoInput, chunk_size: int, num_frames: int | None = None, size: tuple[int, int] | None = None
) -> Iterator[np.ndarray]:
    """Consecutive ``(<=chunk_size, H, W, 3)`` chunks of the first ``num_frames`` frames (all by default), at
    ``size = (H, W)`` when given (see the module docstring)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if _is_array(video):
        array = _as_array(video)[:num_frames]
        transform = FrameTransform.cover(*array.shape[1:3], *(size or array.shape[1:3]))
        for start in range(0, len(array), chunk_size):
            yield transform_frames(array[start : start + chunk_size], transform)
        return
    if isinstance(video, (str, os.PathLike)) and not os.path.isfile(video):
        raise FileNotFoundError(f"video file {str(video)!r} does not exist")
    # One decoding pass (seeking per chunk would re-decode from the previous keyframe every time), frames as
    # displayed and in decode order: what the dataset rows (torchcodec) give.
    chunk: list[np.ndarray] = []
    for frame in iter_video_frames(video, 0, num_frames, size=size, threads=torch.get_num_threads()):
        chunk.append(frame)
        if len(chunk) == chunk_size:
            yield np.stack(chunk)
            chunk = []
    if chunk:
        yield np.stack(chunk)


def check_frame_counts(what: str, count: int, other: str, other_count: int, truncate: bool = False) -> int:
    """The one mismatch rule of every metric (psnr, ssim, speaker_sync, fvd): ``what`` (``count`` decoded
    frames) must have as many frames as ``other``; with ``truncate`` the common prefix is used instead.
    Returns the number of frames to compare; raises ``ValueError`` naming both sides."""
    if count != other_count and not truncate:
        raise ValueError(
            f"{what} has {count} frames but {other} has {other_count}; pass truncate=True to compare the "
            f"first {min(count, other_count)} frames"
        )
    if min(count, other_count) == 0:
        raise ValueError(f"no frames to compare in {what} / {other}")
    return min(count, other_count)


def check_pair(prediction: VideoInput, reference: VideoInput, truncate: bool = False) -> int:
    """Number of frames to compare between a generated video and its reference (decoded frame counts,
    :func:`check_frame_counts`)."""
    return check_frame_counts(
        f"prediction {describe(prediction)}",
        num_video_frames(prediction),
        f"reference {describe(reference)}",
        num_video_frames(reference),
        truncate,
    )


def transform_frames(frames: np.ndarray, transform: FrameTransform) -> np.ndarray:
    """``(N, H, W, 3)`` frames (uint8, or float in [0, 1]) resized and cropped by ``transform``
    (:meth:`FrameTransform.apply_frames`: bilinear, antialiased); returned as they are for the identity."""
    if transform.is_identity:
        return frames
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return transform.apply_frames(tensor).permute(0, 2, 3, 1).numpy()


def resize_frames(frames: torch.Tensor, height: int, width: int, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of float ``(N, C, H, W)`` frames; a no-op at the target size."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    return F.interpolate(
        frames, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias
    )

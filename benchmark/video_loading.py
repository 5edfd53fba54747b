"""Video inputs for the benchmark metrics: a path (probed with :mod:`mit_dataset.video_io`, decoded in one
streaming pass with PyAV) or an array.

Public API (stable; the ``mit-bench`` runner and the metric modules call it):

- ``VideoInput``: ``str | os.PathLike | bytes | np.ndarray | torch.Tensor``. Arrays are ``(F, H, W, 3)`` RGB,
  uint8 or float (the caller states the data range of float arrays).
- ``describe(video) -> str``: a short name for error messages.
- ``num_video_frames(video) -> int``.
- ``iter_frame_chunks(video, chunk_size) -> Iterator[np.ndarray]``: consecutive chunks covering the whole video,
  so a 1080p clip is never held in memory whole.
- ``check_pair(prediction, reference, truncate=False) -> int``: the number of frames to compare; raises
  ``ValueError`` naming both videos when frame counts differ (unless ``truncate``).
- ``resize_frames(frames, height, width, antialias=False) -> torch.Tensor``: bilinear float resize of
  ``(N, C, H, W)`` frames (``F.interpolate``, ``align_corners=False``: the FVD reference preprocessing).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F

from mit_dataset.video_io import probe_video

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
    video: VideoInput, chunk_size: int, num_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Consecutive ``(<=chunk_size, H, W, 3)`` chunks of the first ``num_frames`` frames (all by default)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if _is_array(video):
        array = _as_array(video)[:num_frames]
        for start in range(0, len(array), chunk_size):
            yield array[start : start + chunk_size]
        return
    if isinstance(video, (str, os.PathLike)) and not os.path.isfile(video):
        raise FileNotFoundError(f"video file {str(video)!r} does not exist")
    # One decoding pass (seeking per chunk would re-decode from the previous keyframe every time).
    chunk: list[np.ndarray] = []
    seen = 0
    try:
        with av.open(io.BytesIO(video) if isinstance(video, bytes) else str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if num_frames is not None and seen >= num_frames:
                    break
                chunk.append(frame.to_ndarray(format="rgb24"))
                seen += 1
                if len(chunk) == chunk_size:
                    yield np.stack(chunk)
                    chunk = []
    except (av.error.FFmpegError, OSError, IndexError) as error:
        raise ValueError(f"{describe(video)}: not a readable video ({error})") from error
    if chunk:
        yield np.stack(chunk)


def check_pair(prediction: VideoInput, reference: VideoInput, truncate: bool = False) -> int:
    """Number of frames to compare between a generated video and its reference."""
    n_pred, n_ref = num_video_frames(prediction), num_video_frames(reference)
    if n_pred != n_ref and not truncate:
        raise ValueError(
            f"prediction {describe(prediction)} has {n_pred} frames but reference {describe(reference)} has "
            f"{n_ref}; pass truncate=True to compare the first {min(n_pred, n_ref)} frames"
        )
    if min(n_pred, n_ref) == 0:
        raise ValueError(f"no frames to compare in {describe(prediction)} / {describe(reference)}")
    return min(n_pred, n_ref)


def resize_frames(frames: torch.Tensor, height: int, width: int, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of float ``(N, C, H, W)`` frames; a no-op at the target size."""
    if tuple(frames.shape[-2:]) == (height, width):
        return frames
    return F.interpolate(
        frames, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias
    )

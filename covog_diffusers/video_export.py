"""Write generated frames to an H.264 mp4 with the driving audio muxed in (AAC), atomically.

``CovOGPipeline`` returns frames as PIL images, numpy arrays or torch tensors; :func:`export_to_video`
accepts all of them, converts them to uint8 RGB and hands them to :func:`mit_dataset.video_io.write_video`,
which writes to a temporary file beside the target and renames it into place only once complete.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mit_dataset.video_io import write_video

__all__ = ["export_to_video", "frames_to_uint8"]


def _is_torch(value) -> bool:
    return type(value).__module__.startswith("torch")


def _to_numpy(value) -> np.ndarray:
    if _is_torch(value):
        return value.detach().to("cpu").float().numpy() if value.is_floating_point() else value.cpu().numpy()
    return np.asarray(value)


def _array_to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{what}: frames contain NaN or infinite values")
        return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"{what}: integer frames must lie in [0, 255], got [{array.min()}, {array.max()}]"
            )
        return array.astype(np.uint8)
    raise ValueError(f"{what}: unsupported frame dtype {array.dtype}")


def frames_to_uint8(frames) -> np.ndarray:
    """Convert frames to a ``(F, H, W, 3)`` uint8 RGB array.

    Accepts a list of PIL images, a list of ``(H, W, 3)`` arrays, an ``(F, H, W, 3)`` array (float in
    [0, 1] or uint8), a ``(1, F, H, W, 3)`` batch of one, or torch tensors shaped ``(F, H, W, 3)`` or
    channels-first ``(F, 3, H, W)`` (the pipeline's ``output_type="pt"``; float in [0, 1]).
    Grayscale ``(F, H, W)`` / ``(F, H, W, 1)`` and RGBA inputs are converted to RGB.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("frames: got an empty sequence, expected at least one frame")
        items = []
        for index, frame in enumerate(frames):
            if hasattr(frame, "convert") and hasattr(frame, "size"):  # PIL image
                items.append(np.asarray(frame.convert("RGB")))
            else:
                items.append(_array_to_uint8(_to_numpy(frame), f"frames[{index}]"))
        shapes = {item.shape[:2] for item in items}
        if len(shapes) != 1:
            raise ValueError(f"frames: all frames must share one size, got sizes {sorted(shapes)}")
        array = np.stack([_as_rgb(item, f"frames[{i}]") for i, item in enumerate(items)])
        return array
    is_torch = _is_torch(frames)
    array = _to_numpy(frames)
    if array.ndim == 5:
        if array.shape[0] != 1:
            raise ValueError(
                f"frames: got a batch of {array.shape[0]} videos {array.shape}; export one video at a time"
            )
        array = array[0]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(f"frames: expected (F, H, W, 3) frames, got shape {array.shape}")
    if is_torch and array.shape[1] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 1, -1)  # torch (F, C, H, W) -> (F, H, W, C)
    array = _array_to_uint8(array, "frames")
    return np.stack([_as_rgb(frame, f"frames[{i}]") for i, frame in enumerate(array)])


def _as_rgb(frame: np.ndarray, what: str) -> np.ndarray:
    if frame.ndim == 2:
        frame = frame[..., None]
    channels = frame.shape[-1]
    if frame.ndim != 3 or channels not in (1, 3, 4):
        raise ValueError(f"{what}: expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    if channels == 1:
        return np.repeat(frame, 3, axis=-1)
    return frame[..., :3]


def _audio_to_mono(audio, what: str = "audio") -> np.ndarray:
    array = _to_numpy(audio).astype(np.float32)
    if array.ndim == 2:
        # (channels, samples) or (samples, channels): average the short axis.
        array = array.mean(axis=0 if array.shape[0] <= array.shape[1] else 1)
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a mono waveform (S,), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: waveform contains NaN or infinite values")
    peak = float(np.abs(array).max()) if array.size else 0.0
    if peak > 1.0:
        array = array / peak  # AAC expects [-1, 1]; keep relative levels.
    return array


def export_to_video(
    frames: Sequence | np.ndarray,
    path: str | os.PathLike,
    fps: float = 25,
    audio=None,
    sample_rate: int = 16_000,
    trim_audio: bool = True,
    pad_to_even: bool = True,
    crf: int = 18,
) -> Path:
    """Encode ``frames`` to an H.264 mp4 at ``path`` and mux ``audio`` (mono waveform) as AAC.

    ``trim_audio`` cuts the audio to the video duration (``len(frames) / fps``) so players do not show a
    frozen last frame; shorter audio is kept as is. ``pad_to_even`` replicates the last row/column when a
    side is odd (H.264 with yuv420p needs even sizes). Returns the final path; the file appears only once
    complete (atomic rename), so an interrupted export never leaves a truncated mp4 under ``path``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    array = frames_to_uint8(frames)
    if pad_to_even and (array.shape[1] % 2 or array.shape[2] % 2):
        array = np.pad(array, ((0, 0), (0, array.shape[1] % 2), (0, array.shape[2] % 2), (0, 0)), mode="edge")
    waveform = None
    if audio is not None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        waveform = _audio_to_mono(audio)
        if trim_audio:
            waveform = waveform[: round(len(array) / fps * sample_rate)]
        if waveform.size == 0:
            waveform = None
    return write_video(path, iter(array), fps=fps, audio=waveform, sample_rate=int(sample_rate), crf=crf)

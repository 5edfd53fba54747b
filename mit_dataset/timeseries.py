"""Per-frame signal helpers shared by the score producers (VAD) and consumers (speaker sync)."""

from __future__ import annotations

import numpy as np


def centred_moving_average(values: np.ndarray, frames: int) -> np.ndarray:
    """Centred moving average of ``frames`` samples over the last axis, edge-padded so the length is kept
    and the ends are not pulled toward zero (a speaker talking at the clip start stays "speaking")."""
    values = np.asarray(values, dtype=np.float64)
    if frames <= 1:
        return values
    left = (frames - 1) // 2
    padded = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(left, frames - 1 - left)], mode="edge")
    cumsum = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(padded, axis=-1)], axis=-1)
    return (cumsum[..., frames:] - cumsum[..., :-frames]) / frames


def frame_to_sample(frame: int, fps: float, sample_rate: int) -> int:
    """Index of the audio sample heard when frame ``frame`` starts: ``round(frame / fps * sample_rate)``, the
    frame/audio pairing the dataset stores (:func:`mit_dataset.video_io.read_audio`). Any integer frame,
    negative or past the end (context around a window), maps the same way."""
    return round(int(frame) / float(fps) * int(sample_rate))

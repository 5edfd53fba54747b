"""Keyword inputs for the tiny CovOGPipeline in tests (``from pipeline_inputs import make_inputs``)."""

from __future__ import annotations

import numpy as np

H, W = 32, 64  # the tiny pipeline's default size
P, F = 2, 8


def make_inputs(persons: int = P, frames: int = F, seed: int = 0) -> dict:
    """Keyword inputs: persons side by side with confident head points, a random reference image, noise audio."""
    rng = np.random.default_rng(seed)
    keypoints = np.zeros((persons, frames, 59, 3), np.float32)
    slot = W / persons
    for i in range(persons):
        keypoints[i, ..., 0] = rng.uniform(i * slot + 2, (i + 1) * slot - 2, (frames, 59))
        keypoints[i, ..., 1] = rng.uniform(20, H - 2, (frames, 59))
        keypoints[i, :, 0, :2] = [(i + 0.5) * slot, 12]  # nose
        keypoints[i, :, 1, :2] = [(i + 0.5) * slot + 3, 9]  # eyes
        keypoints[i, :, 2, :2] = [(i + 0.5) * slot - 3, 9]
    keypoints[..., 2] = 0.9
    return {
        "reference_image": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "reference_poses": keypoints[:, 0],
        "poses": keypoints,
        "audio": (0.1 * rng.standard_normal(frames * 640)).astype(np.float32),
        "sample_rate": 16_000,
        "speaking_scores": rng.uniform(-1, 1, (persons, frames)).astype(np.float32),
        "num_inference_steps": 2,
    }

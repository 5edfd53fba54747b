from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput


@dataclass
class CovOGPipelineOutput(BaseOutput):
    """``frames``: ``output_type="np"``: ``(B, F, H, W, 3)`` float32 in [0, 1]; ``"pt"``: ``(B, F, 3, H, W)`` float
    tensor in [0, 1]; ``"pil"``: ``B`` lists of ``F`` PIL images; ``"latent"``: ``(B, 4, F, h, w)`` scaled latents.
    ``B`` is the number of reference images times ``num_videos_per_prompt``, the copies of a video next to each
    other (video ``i``'s ``j``-th copy at ``i * num_videos_per_prompt + j``). ``None`` when a ``frames_callback``
    consumed the frames."""

    frames: object


def concatenate_frames(chunks: list, output_type: str):
    """Windows' frames (each with the batch axis) -> whole videos, frames along axis 1 (latents: axis 2)."""
    if output_type == "latent":
        return torch.cat(chunks, dim=2)
    if output_type == "pt":
        return torch.cat(chunks, dim=1)
    if output_type == "np":
        return np.concatenate(chunks, axis=1)
    return [[image for chunk in chunks for image in chunk[video]] for video in range(len(chunks[0]))]

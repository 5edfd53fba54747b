from __future__ import annotations

from dataclasses import dataclass

from diffusers.utils import BaseOutput


@dataclass
class CovOGPipelineOutput(BaseOutput):
    """``frames``: ``output_type="np"``: ``(B, F, H, W, 3)`` float32 in [0, 1]; ``"pt"``: ``(B, F, 3, H, W)`` float
    tensor in [0, 1]; ``"pil"``: ``B`` lists of ``F`` PIL images; ``"latent"``: ``(B, 4, F, h, w)`` scaled latents.
    ``None`` when a ``frames_callback`` consumed the frames."""

    frames: object

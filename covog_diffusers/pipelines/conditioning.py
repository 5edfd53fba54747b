"""Reference conditioning shared by :class:`~covog_diffusers.pipelines.CovOGPipeline` and ``training``.

The CLIP image embedding and the VAE latents of a reference frame are computed here and nowhere else, so a
model is trained on exactly the conditioning it gets at inference (same CLIP preprocessing, same latent
statistic, same scaling factor). Images are ``(B, 3, H, W)`` tensors in [-1, 1], the training view's layout.
"""

from __future__ import annotations

import numpy as np
import torch

from mit_dataset.tensors import tensor_from_array


def pixels_to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """``(B, 3, H, W)`` in [-1, 1] -> ``B`` arrays ``(H, W, 3)`` uint8 (exact for images made as ``u / 127.5 - 1``)."""
    values = ((images.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return list(values.permute(0, 2, 3, 1).numpy())


def uint8_to_pixels(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 (read-only arrays too) -> ``(1, 3, H, W)`` float32 in [-1, 1], converted in one copy."""
    return tensor_from_array(image, torch.float32).permute(2, 0, 1)[None].div(127.5).sub_(1.0)


@torch.no_grad()
def clip_image_embeds(image_encoder, feature_extractor, images: torch.Tensor) -> torch.Tensor:
    """``(B, 1, D)`` CLIP image embeddings (``image_embeds``, the projection) of ``(B, 3, H, W)`` images in
    [-1, 1], preprocessed by the pipeline's ``feature_extractor`` (resize, centre crop, CLIP normalisation)."""
    pixels = feature_extractor(images=pixels_to_uint8(images), return_tensors="pt").pixel_values
    device = next(image_encoder.parameters()).device
    return image_encoder(pixels.to(device, image_encoder.dtype)).image_embeds[:, None]


@torch.no_grad()
def vae_latents(vae, images: torch.Tensor, generator: torch.Generator | None = None, sample: bool = False):
    """``(B, 4, H/8, W/8)`` scaled latents of ``(B, 3, H, W)`` images in [-1, 1]: the posterior mode (the
    reference, deterministic) or, with ``sample=True``, a draw from it (training targets, as diffusers'
    training scripts do)."""
    device = next(vae.parameters()).device
    dist = vae.encode(images.to(device, vae.dtype)).latent_dist
    latents = dist.sample(generator=generator) if sample else dist.mode()
    return latents * vae.config.scaling_factor

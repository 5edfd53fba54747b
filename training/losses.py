"""The diffusion objective: noise, timesteps, target and min-SNR-weighted MSE.

Noise comes from ``DDPMScheduler.from_config(pipe.scheduler.config)``: the betas of the pipeline's own
inference scheduler (:data:`covog_diffusers.pipelines.SCHEDULER_CONFIG`: SD1.5 betas rescaled to zero terminal
SNR, v-prediction), so training and inference share one schedule (the partial release trained on
``scaled_linear`` and sampled on ``linear``).

* Offset noise (Guttenberg 2023): ``noise + offset * n``, ``n ~ N(0, 1)`` per sample and channel, shared by
  every frame and pixel, so the model can change a video's mean brightness.
* Min-SNR weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"):
  ``w(t) = min(SNR(t), gamma) / (SNR(t) + 1)`` for v-prediction, ``min(SNR(t), gamma) / SNR(t)`` for epsilon,
  with ``SNR(t) = alpha_bar_t / (1 - alpha_bar_t)`` (:func:`diffusers.training_utils.compute_snr`). At the
  zero-SNR terminal step the v-prediction weight is 0.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

PREDICTION_TYPES = ("v_prediction", "epsilon")


def noise_scheduler_for(pipe) -> DDPMScheduler:
    """The training noise scheduler with the pipeline scheduler's betas and prediction type."""
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    if scheduler.config.prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"the pipeline's scheduler predicts {scheduler.config.prediction_type!r}; training supports "
            f"{PREDICTION_TYPES}"
        )
    return scheduler


def sample_noise(latents: torch.Tensor, offset: float, generator: torch.Generator) -> torch.Tensor:
    """``N(0, 1)`` noise shaped like ``latents`` ``(B, C, F, h, w)`` plus ``offset`` times per-(sample, channel)
    noise."""
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if offset:
        shift = torch.randn(
            latents.shape[:2] + (1,) * (latents.ndim - 2),
            generator=generator,
            device=latents.device,
            dtype=latents.dtype,
        )
        noise = noise + offset * shift
    return noise


def sample_timesteps(scheduler, batch_size: int, generator: torch.Generator, device) -> torch.Tensor:
    """``(B,)`` int64 timesteps uniform over ``[0, num_train_timesteps)``."""
    high = scheduler.config.num_train_timesteps
    return torch.randint(0, high, (batch_size,), generator=generator, device=device, dtype=torch.int64)


def diffusion_target(scheduler, latents, noise, timesteps) -> torch.Tensor:
    """What the model must predict: the velocity ``v = sqrt(a) noise - sqrt(1 - a) x0`` or the noise."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return noise


def loss_weights(scheduler, timesteps: torch.Tensor, snr_gamma: float | None) -> torch.Tensor:
    """``(B,)`` per-sample weights: min-SNR (see the module docstring) or ones."""
    if snr_gamma is None:
        return torch.ones(timesteps.shape, device=timesteps.device)
    snr = compute_snr(scheduler, timesteps).float()
    clipped = torch.clamp(snr, max=snr_gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr.clamp(min=1e-8)


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ``weights * mean((prediction - target)^2)`` (float32)."""
    per_sample = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    return (per_sample * weights.float()).mean()

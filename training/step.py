"""From a training-view batch to the training model's inputs, the target and the loss weights.

The frozen encoders run here without gradients, with the functions the pipeline uses
(:mod:`covog_diffusers.pipelines.conditioning`; :func:`~covog_diffusers.models.audio.window_audio_features` on
the view's ``audio_context``: wav2vec2 hears each window with the pipeline's context, zeros outside the clip),
and the IAD face masks are made the pipeline's way too: head boxes from the nose/eye keypoints
(:func:`mit_dataset.keypoints.head_box`) as soft coverage of the latent grid
(:func:`~covog_diffusers.pipelines.inputs.box_coverage_masks`).

Randomness (latent sample, noise, timesteps, which samples drop the reference) comes from one generator per
micro-batch seeded by ``(seed, micro_step, process)``: a resumed run draws exactly what an uninterrupted one
would, whatever RNG state the checkpoint restored.
"""

from __future__ import annotations

import numpy as np
import torch

from covog_diffusers.models.audio import window_audio_features
from covog_diffusers.pipelines.conditioning import clip_image_embeds, vae_latents
from covog_diffusers.pipelines.inputs import box_coverage_masks
from mit_dataset.features import SAMPLING_RATE
from mit_dataset.keypoints import head_box

from .losses import diffusion_target, loss_weights, sample_noise, sample_timesteps


def step_generator(seed: int, micro_step: int, process_index: int, device) -> torch.Generator:
    """The generator of one micro-batch (see the module docstring)."""
    state = np.random.SeedSequence([seed, micro_step, process_index]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def face_masks_from_keypoints(
    keypoints: torch.Tensor, height: int, width: int, grid: tuple[int, int]
) -> torch.Tensor:
    """``(B, P, F, 59, 3)`` keypoints in output pixels -> ``(B, P, F, h, w)`` soft head-box masks."""
    boxes = head_box(keypoints.numpy())
    return torch.from_numpy(box_coverage_masks(boxes, height, width, *grid).astype(np.float32))


def pose_maps_to_float(maps: torch.Tensor, device) -> torch.Tensor:
    """Pose maps on ``device`` as float in [0, 1] (uint8 maps divided by 255, as the pipeline does)."""
    maps = maps.to(device, non_blocking=True)
    return maps.float() / 255.0 if maps.dtype == torch.uint8 else maps


def audio_features(pipe, batch: dict, num_frames: int, stride: int) -> torch.Tensor:
    """``(B, F, 2 * window + 1, L, D)`` wav2vec2 neighbourhoods of the sampled frames, from each sample's
    ``audio_context`` (the view built with ``audio_context_frames``, :func:`training.data.build_view`)."""
    window = pipe.audio_projection.config.window
    features = []
    for i, samples in enumerate(batch["audio_context"]):
        waveform, fps = samples[: int(batch["audio_context_lengths"][i])], float(batch["fps"][i])
        features.append(
            window_audio_features(
                pipe.audio_encoder, waveform, SAMPLING_RATE, num_frames, fps, stride, window
            )
        )
    return torch.stack(features)


def prepare_step(pipe, scheduler, batch: dict, config, generator: torch.Generator, device, use_audio: bool):
    """``(model_inputs, target, weights)`` for :class:`~training.network.CovOGTrainingModel`.

    ``model_inputs`` are keyword arguments of its ``forward``; ``target`` ``(B, 4, F, h, w)`` and ``weights``
    ``(B,)`` feed :func:`training.losses.weighted_mse`.
    """
    pixels = batch["pixel_values"]  # (B, F, 3, H, W)
    b, f = pixels.shape[:2]
    height, width = pixels.shape[-2:]
    latents = vae_latents(pipe.vae, pixels.flatten(0, 1), generator=generator, sample=True)
    latents = latents.reshape(b, f, *latents.shape[1:]).transpose(1, 2).float()  # (B, 4, F, h, w)
    reference = batch["reference_pixel_values"]
    image_embeds = clip_image_embeds(pipe.image_encoder, pipe.feature_extractor, reference).float()
    reference_latents = vae_latents(pipe.vae, reference).float()

    noise = sample_noise(latents, config.training.noise_offset, generator)
    timesteps = sample_timesteps(scheduler, b, generator, latents.device)
    keep = torch.rand(b, generator=generator, device=latents.device) >= config.training.uncond_probability
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = diffusion_target(scheduler, latents, noise, timesteps)
    weights = loss_weights(scheduler, timesteps, config.training.snr_gamma)

    inputs = {
        "noisy_latents": noisy,
        "timesteps": timesteps,
        "image_embeds": image_embeds,
        "reference_latents": reference_latents,
        "keep_reference": keep,
        "reference_pose_maps": pose_maps_to_float(batch["reference_pose_maps"], device),
        "pose_maps": pose_maps_to_float(batch["pose_maps"], device),
        "person_mask": batch["person_mask"].to(device),
    }
    if use_audio:
        grid = tuple(latents.shape[-2:])
        inputs["audio_features"] = audio_features(pipe, batch, f, config.data.stride).to(device)
        inputs["speaking_scores"] = batch["speaking_scores"].to(device)
        inputs["face_masks"] = face_masks_from_keypoints(batch["keypoints"], height, width, grid).to(device)
    return inputs, target, weights


@torch.no_grad()
def fixed_batch_loss(pipe, config, batch: dict, seeds=(0, 1, 2, 3)) -> float:
    """The training loss of ``pipe`` on ``batch``, averaged over the noise/timestep draws of ``seeds``
    (deterministic: compare a model before and after training on the same batch)."""
    from .losses import noise_scheduler_for, weighted_mse
    from .network import CovOGTrainingModel

    device = pipe.denoising_unet.device
    model = CovOGTrainingModel(
        pipe.reference_unet, pipe.denoising_unet, pipe.pose_guider, pipe.pose_adaptor, pipe.audio_projection,
        bypass_motion_modules=config.stage == 1,
    )  # fmt: skip
    scheduler = noise_scheduler_for(pipe)
    losses = []
    try:
        for seed in seeds:
            generator = step_generator(seed, 0, 0, device)
            use_audio = config.stage == 2 and pipe.uses_audio
            inputs, target, weights = prepare_step(
                pipe, scheduler, batch, config, generator, device, use_audio
            )
            losses.append(float(weighted_mse(model(**inputs), target, weights)))
    finally:
        model.release()
    return sum(losses) / len(losses)

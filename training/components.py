"""The pipeline a run starts from, and which of its parameters each stage trains.

=================  ====================================================  =========================================
component          stage 1 (image level)                                 stage 2 (clips)
=================  ====================================================  =========================================
reference_unet     trained                                               frozen
denoising_unet     spatial layers trained; motion modules and IADs       motion modules and IADs trained; spatial
                   frozen (and bypassed: AnimateAnyone's image stage)     layers frozen
pose_guider        trained                                               frozen
pose_adaptor       trained                                               frozen (the paper fixes it)
audio_projection   frozen (no audio in stage 1)                          trained
vae, image_encoder, audio_encoder: always frozen
=================  ====================================================  =========================================

With LoRA (``model.lora_rank``) only the adapter weights train (:mod:`training.lora`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

#: Components the training model holds (trainable in some stage); the rest only encode inputs.
TRAINED_COMPONENTS = ("reference_unet", "denoising_unet", "pose_guider", "pose_adaptor", "audio_projection")
FROZEN_COMPONENTS = ("vae", "image_encoder", "audio_encoder")
#: Parts of the DenoisingNet that are not spatial layers.
TEMPORAL_PARTS = ("motion_modules", "audio_drivers")


def load_pipeline(pretrained: str, vae: str | None = None, seed: int = 0):
    """The :class:`~covog_diffusers.CovOGPipeline` to train: a saved/assembled pipeline folder, or ``"tiny"``
    (random tiny components, tests). ``vae``: an ``AutoencoderKL`` folder that replaces the pipeline's VAE.

    Raises:
        FileNotFoundError: the folder is not a saved pipeline / VAE.
        ValueError: the VAE does not fit the pipeline (latent channels, downsampling factor).
    """
    from covog_diffusers import CovOGPipeline

    if pretrained == "tiny":
        from covog_diffusers.tiny import create_tiny_pipeline

        pipe = create_tiny_pipeline(seed=seed)
    else:
        if not (Path(pretrained) / "model_index.json").is_file():
            raise FileNotFoundError(
                f"model.pretrained: {pretrained} is not a CovOG pipeline folder (no model_index.json); "
                "make one with `covog assemble` or use a saved training run's pipeline/"
            )
        pipe = CovOGPipeline.from_pretrained(pretrained)
    if vae is not None:
        from diffusers import AutoencoderKL

        if not (Path(vae) / "config.json").is_file():
            raise FileNotFoundError(f"model.vae: {vae} is not an AutoencoderKL folder (no config.json)")
        new_vae = AutoencoderKL.from_pretrained(vae)
        old = pipe.vae.config
        factor = 2 ** (len(new_vae.config.block_out_channels) - 1)
        if new_vae.config.latent_channels != old.latent_channels or factor != pipe.vae_scale_factor:
            raise ValueError(
                f"model.vae: {vae} has {new_vae.config.latent_channels} latent channels and downsamples by "
                f"{factor}; the pipeline's UNets need {old.latent_channels} and {pipe.vae_scale_factor}"
            )
        pipe = CovOGPipeline(**{**pipe.components, "vae": new_vae})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def resolution_multiple(pipe) -> int:
    """Height and width must be multiples of this: the VAE factor times the DenoisingNet's downsampling."""
    return pipe.vae_scale_factor * 2 ** (len(pipe.denoising_unet.config.down_block_types) - 1)


def check_resolution(pipe, height: int, width: int) -> None:
    multiple = resolution_multiple(pipe)
    for name, value in (("data.height", height), ("data.width", width)):
        if value % pipe.vae_scale_factor:
            raise ValueError(
                f"{name}={value} is not divisible by the VAE factor {pipe.vae_scale_factor} (latents)"
            )
        if value % multiple:
            raise ValueError(
                f"{name}={value} is not divisible by {multiple}: the VAE factor {pipe.vae_scale_factor} times the "
                f"DenoisingNet's {len(pipe.denoising_unet.config.down_block_types) - 1} downsamplings"
            )


def _is_temporal(name: str) -> bool:
    return any(part in name.split(".") for part in TEMPORAL_PARTS)


def stage_trainable(pipe, stage: int) -> dict[str, list[str]]:
    """``{component: [parameter names]}`` a stage trains (see the module table)."""
    selected: dict[str, list[str]] = {}
    for name in TRAINED_COMPONENTS:
        module = getattr(pipe, name, None)
        if module is None:
            continue
        names = [n for n, _ in module.named_parameters()]
        if stage == 1:
            chosen = {
                "reference_unet": names,
                "denoising_unet": [n for n in names if not _is_temporal(n)],
                "pose_guider": names,
                "pose_adaptor": names,
            }.get(name, [])
        else:
            chosen = {
                "denoising_unet": [n for n in names if _is_temporal(n)],
                "audio_projection": names,
            }.get(name, [])
        selected[name] = chosen
    return selected


def set_trainable(pipe, selected: dict[str, list[str]]) -> list[torch.nn.Parameter]:
    """Freeze every component, then unfreeze ``selected``; returns the trainable parameters."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False)
    params = []
    for name, names in selected.items():
        wanted = set(names)
        for param_name, param in getattr(pipe, name).named_parameters():
            if param_name in wanted:
                param.requires_grad_(True)
                params.append(param)
    return params


def parameter_table(pipe) -> str:
    """One line per component: trainable and frozen parameter counts."""
    lines = [f"{'component':<18}{'trainable':>14}{'frozen':>14}"]
    total = [0, 0]
    for name, component in pipe.components.items():
        if not isinstance(component, torch.nn.Module):
            continue
        trainable = sum(p.numel() for p in component.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in component.parameters() if not p.requires_grad)
        total[0] += trainable
        total[1] += frozen
        lines.append(f"{name:<18}{trainable:>14,}{frozen:>14,}")
    lines.append(f"{'total':<18}{total[0]:>14,}{total[1]:>14,}")
    return "\n".join(lines)


def model_fingerprint(pipe) -> str:
    """A hash of every component's class and config: resuming into another model architecture is refused."""
    description = {}
    for name, component in sorted(pipe.components.items()):
        config = getattr(component, "config", None)
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if config is not None:
            config = {k: v for k, v in dict(config).items() if not k.startswith("_") and "version" not in k}
        description[name] = [type(component).__name__, config]
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]

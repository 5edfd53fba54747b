"""Tiny random-initialised CovOG pipeline for tests, demos and CI (no weights from anywhere).

``create_tiny_pipeline()`` builds every component with toy sizes (UNets with 2 blocks of 32/64 channels, a
4-level VAE with 16 channels so the latent grid is still 1/8, a 2-layer CLIP vision tower and wav2vec2). Its
generation defaults (:data:`TINY_GENERATION_DEFAULTS`: 32x64, 4 steps, guidance 2) make a 3 s, 75-frame clip in
seconds on a CPU, with the progress bar on like any pipeline's.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Wav2Vec2Config, Wav2Vec2Model

try:  # transformers >= 5: the PIL backend by name (the default one wants torchvision)
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # transformers 4.x
    from transformers import CLIPImageProcessor

from .models import AudioProjection, CovOGDenoisingNet, MultiHumanPoseEncoder
from .pipelines import CovOGPipeline, create_scheduler

TINY_DIM = 32
#: What ``pipe()`` does when not told otherwise (``CovOGPipeline.set_generation_defaults``): a 16:9-like size
#: and few steps, since a random model gains nothing from more; classifier-free guidance on, so it is exercised.
TINY_GENERATION_DEFAULTS = {"height": 32, "width": 64, "num_inference_steps": 4, "guidance_scale": 2.0}
_UNET = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "cross_attention_dim": TINY_DIM,
}


def tiny_configs() -> dict[str, dict]:
    """Config dict of every tiny model component (keys = pipeline component names)."""
    return {
        "vae": {
            "block_out_channels": (8, 16, 16, 16),
            "down_block_types": ("DownEncoderBlock2D",) * 4,
            "up_block_types": ("UpDecoderBlock2D",) * 4,
            "latent_channels": 4,
            "layers_per_block": 1,
            "norm_num_groups": 8,
            "sample_size": 64,
        },
        "reference_unet": {
            **_UNET,
            "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
            "attention_head_dim": 8,
        },
        "denoising_unet": {
            **_UNET,
            "down_block_types": ("CrossAttnDownBlockMotion", "DownBlockMotion"),
            "up_block_types": ("UpBlockMotion", "CrossAttnUpBlockMotion"),
            "num_attention_heads": 4,
            "motion_num_attention_heads": 4,
            "audio_cross_attention_dim": TINY_DIM,
            "iad_num_heads": 4,
            "iad_gate_hidden_dim": 16,
        },
        "pose_guider": {"block_out_channels": (8, 16, 16, 32), "out_channels": 32},
        "pose_adaptor": {"block_out_channels": (8, 16, 16, 32), "out_channels": 32},
        "image_encoder": {
            "hidden_size": TINY_DIM,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": TINY_DIM,
        },
        "audio_encoder": {
            "hidden_size": TINY_DIM,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "conv_dim": (16,) * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2,
        },
        "audio_projection": {
            "num_layers": 2,
            "feature_dim": TINY_DIM,
            "window": 2,
            "intermediate_dim": 32,
            "num_tokens": 4,
            "cross_attention_dim": TINY_DIM,
        },
    }


def create_tiny_pipeline(seed: int = 0, randomize_zero_init: bool = False, **overrides) -> CovOGPipeline:
    """A tiny, random-initialised :class:`CovOGPipeline` (CPU, float32, eval mode, :data:`TINY_GENERATION_DEFAULTS`).

    ``overrides``: per component either a dict of config changes (``denoising_unet={"use_iad": False}``,
    ``pose_guider={"joint": True}``) or a ready component / ``None`` (optional components) to use as is.
    ``randomize_zero_init`` fills the zero-initialised output layers (pose encoders, IADs, motion modules) with small random
    values, so that every input visibly changes the output (tests).
    """
    configs = tiny_configs()
    unknown = set(overrides) - set(configs) - {"scheduler", "feature_extractor"}
    if unknown:
        raise ValueError(f"unknown tiny pipeline components {sorted(unknown)}")

    def config(name):
        return {**configs[name], **(overrides.get(name) or {})}

    builders = {
        "vae": lambda: AutoencoderKL(**config("vae")),
        "reference_unet": lambda: UNet2DConditionModel(**config("reference_unet")),
        "denoising_unet": lambda: CovOGDenoisingNet(**config("denoising_unet")),
        "pose_guider": lambda: MultiHumanPoseEncoder(**config("pose_guider")),
        "pose_adaptor": lambda: MultiHumanPoseEncoder(**config("pose_adaptor")),
        "image_encoder": lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**config("image_encoder"))),
        "audio_encoder": lambda: Wav2Vec2Model(Wav2Vec2Config(**config("audio_encoder"))),
        "audio_projection": lambda: AudioProjection(**config("audio_projection")),
    }
    torch.manual_seed(seed)
    components = {}
    for name, build in builders.items():
        value = overrides.get(name)
        components[name] = (
            build() if value is None and name not in overrides or isinstance(value, dict) else value
        )
    size = configs["image_encoder"]["image_size"]
    components["feature_extractor"] = overrides.get("feature_extractor") or CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    components["scheduler"] = overrides.get("scheduler") or create_scheduler()

    if randomize_zero_init:
        generator = torch.Generator().manual_seed(seed + 1)
        layers = []
        for name in ("pose_guider", "pose_adaptor"):
            if components[name] is not None:
                layers.append(components[name].conv_out)
        unet = components["denoising_unet"]
        layers += [driver.to_out for driver in unet.audio_drivers] if unet.audio_drivers is not None else []
        layers += [m.proj_out for n, m in unet.named_modules() if n.split(".")[-2:-1] == ["motion_modules"]]
        with torch.no_grad():
            for layer in layers:
                for param in layer.parameters():
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1)

    pipe = CovOGPipeline(**components)
    pipe.set_generation_defaults(**TINY_GENERATION_DEFAULTS)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe

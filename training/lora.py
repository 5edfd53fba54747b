"""LoRA (``--lora-rank R``): low-rank adapters on the UNets' spatial attention, through peft.

Adapting a trained CovOG to new identities changes how the reference is read and rendered, which lives in the
spatial attention of the ReferenceNet and the DenoisingNet (self-attention with the reference bank,
cross-attention to the CLIP embedding). :data:`LORA_TARGET_MODULES` selects their ``to_q/to_k/to_v/to_out.0``
projections and leaves the motion modules alone. ``UNet.add_adapter(LoraConfig)`` (diffusers'
``PeftAdapterMixin``) injects the adapters; only their weights train (B is zero-initialised, so training
starts from the base model exactly). The result is saved with
:meth:`CovOGPipeline.save_lora_weights <covog_diffusers.loaders.CovOGLoraLoaderMixin.save_lora_weights>` and
loaded with ``pipe.load_lora_weights(dir)``.
"""

from __future__ import annotations

import re

import torch

#: Full-match regex (peft ``target_modules``) of the spatial attention projections of both UNets.
LORA_TARGET_MODULES = r".*attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)"
LORA_UNETS = ("reference_unet", "denoising_unet")


def attention_targets(unet) -> list[str]:
    """Names of the modules of ``unet`` that :data:`LORA_TARGET_MODULES` adapts."""
    pattern = re.compile(LORA_TARGET_MODULES)
    return [
        name
        for name, module in unet.named_modules()
        if pattern.fullmatch(name) and isinstance(module, torch.nn.Linear)
    ]


def check_lora_targets(pipe, rank: int) -> None:
    """ValueError naming the UNet when one has no attention layer to adapt (before anything is trained)."""
    for name in LORA_UNETS:
        if not attention_targets(getattr(pipe, name)):
            raise ValueError(
                f"--lora-rank {rank}: {name} has no spatial attention layers (transformer blocks with "
                "to_q/to_k/to_v/to_out.0) to put LoRA adapters on"
            )


def add_lora_adapters(pipe, rank: int, alpha: float | None = None) -> list[torch.nn.Parameter]:
    """Freeze every component, add a LoRA adapter of ``rank`` to both UNets; returns the adapter parameters."""
    from peft import LoraConfig

    check_lora_targets(pipe, rank)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        init_lora_weights="gaussian",
        target_modules=LORA_TARGET_MODULES,
    )
    params = []
    for name in LORA_UNETS:
        unet = getattr(pipe, name)
        unet.add_adapter(config)
        params += [p for n, p in unet.named_parameters() if "lora_" in n]
    for param in params:
        param.requires_grad_(True)
    return params


def save_lora(pipe, out_dir) -> None:
    """Write both UNets' adapters with ``CovOGPipeline.save_lora_weights`` (diffusers layout + metadata)."""
    from peft.utils import get_peft_model_state_dict

    kwargs = {}
    for name in LORA_UNETS:
        unet = getattr(pipe, name)
        kwargs[f"{name}_lora_layers"] = get_peft_model_state_dict(unet)
        kwargs[f"{name}_lora_adapter_metadata"] = unet.peft_config["default"].to_dict()
    type(pipe).save_lora_weights(out_dir, **kwargs)

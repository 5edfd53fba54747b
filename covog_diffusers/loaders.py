"""LoRA weights for :class:`~covog_diffusers.CovOGPipeline`, the diffusers way (``LoraBaseMixin``).

``CovOGPipeline.save_lora_weights(dir, denoising_unet_lora_layers=..., reference_unet_lora_layers=...)`` writes
``pytorch_lora_weights.safetensors`` with keys prefixed by the component name (``denoising_unet.``,
``reference_unet.``) and each adapter's ``LoraConfig`` as safetensors metadata, like diffusers' own
``*LoraLoaderMixin`` classes; ``pipe.load_lora_weights(dir)`` injects the adapters through
``PeftAdapterMixin.load_lora_adapter`` on each UNet. Only safetensors files are read (no pickle).
Adapters are trained with ``covog train --lora-rank R`` (see ``training.lora``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from diffusers.loaders.lora_base import LoraBaseMixin, _fetch_state_dict


class CovOGLoraLoaderMixin(LoraBaseMixin):
    """Load/save LoRA layers of the ReferenceNet and the DenoisingNet."""

    _lora_loadable_modules = ("denoising_unet", "reference_unet")

    @classmethod
    def lora_state_dict(cls, pretrained_model_name_or_path_or_dict, **kwargs):
        """``(state_dict, metadata)`` from a folder / safetensors file / dict (no pickle files)."""
        state_dict, metadata = _fetch_state_dict(
            pretrained_model_name_or_path_or_dict=pretrained_model_name_or_path_or_dict,
            weight_name=kwargs.pop("weight_name", None),
            use_safetensors=True,
            local_files_only=kwargs.pop("local_files_only", None),
            cache_dir=kwargs.pop("cache_dir", None),
            force_download=kwargs.pop("force_download", False),
            proxies=kwargs.pop("proxies", None),
            token=kwargs.pop("token", None),
            revision=kwargs.pop("revision", None),
            subfolder=kwargs.pop("subfolder", None),
            user_agent={"file_type": "attn_procs_weights", "framework": "pytorch"},
            allow_pickle=False,
        )
        return state_dict, metadata

    def load_lora_weights(
        self, pretrained_model_name_or_path_or_dict, adapter_name: str | None = None, **kwargs
    ):
        """Inject the LoRA adapters saved by :meth:`save_lora_weights` into the pipeline's UNets."""
        if isinstance(pretrained_model_name_or_path_or_dict, dict):
            pretrained_model_name_or_path_or_dict = dict(pretrained_model_name_or_path_or_dict)
        state_dict, metadata = self.lora_state_dict(pretrained_model_name_or_path_or_dict, **kwargs)
        if not state_dict or not all("lora" in key for key in state_dict):
            raise ValueError(
                "not a CovOG LoRA checkpoint: every parameter name must contain 'lora' "
                f"(first keys: {sorted(state_dict)[:3]})"
            )
        found = [
            name for name in self._lora_loadable_modules if any(k.startswith(f"{name}.") for k in state_dict)
        ]
        if not found:
            raise ValueError(
                f"the LoRA checkpoint has no weights for {self._lora_loadable_modules} (keys must start with "
                "'denoising_unet.' or 'reference_unet.')"
            )
        for name in found:
            getattr(self, name).load_lora_adapter(
                state_dict, prefix=name, adapter_name=adapter_name, metadata=metadata, _pipeline=self
            )

    @classmethod
    def save_lora_weights(
        cls,
        save_directory: str | os.PathLike,
        denoising_unet_lora_layers: dict[str, torch.Tensor] | None = None,
        reference_unet_lora_layers: dict[str, torch.Tensor] | None = None,
        is_main_process: bool = True,
        weight_name: str | None = None,
        save_function: Callable | None = None,
        denoising_unet_lora_adapter_metadata: dict | None = None,
        reference_unet_lora_adapter_metadata: dict | None = None,
    ) -> None:
        """Write the UNets' LoRA layers (``peft.get_peft_model_state_dict(unet)``) as one safetensors file."""
        layers, metadata = {}, {}
        for name, values, meta in (
            ("denoising_unet", denoising_unet_lora_layers, denoising_unet_lora_adapter_metadata),
            ("reference_unet", reference_unet_lora_layers, reference_unet_lora_adapter_metadata),
        ):
            if values:
                layers[name], metadata[name] = values, meta
        if not layers:
            raise ValueError("pass denoising_unet_lora_layers and/or reference_unet_lora_layers")
        cls._save_lora_weights(
            save_directory=save_directory,
            lora_layers=layers,
            lora_metadata=metadata,
            is_main_process=is_main_process,
            weight_name=weight_name,
            save_function=save_function,
            safe_serialization=True,
        )

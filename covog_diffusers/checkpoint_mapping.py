"""Key mappings between original checkpoint layouts and the diffusers modules CovOG is built from.

Layouts handled (all mappings are pure renames: no tensor is reshaped):

* **Stable Diffusion 1.x UNet, original LDM layout** (``model.diffusion_model.*`` in ``v1-5-pruned*.ckpt`` /
  ``.safetensors``) <-> diffusers :class:`~diffusers.UNet2DConditionModel`. LDM numbers every UNet layer in flat
  ``input_blocks`` / ``middle_block`` / ``output_blocks`` lists: ``input_blocks.0`` is ``conv_in``; each down level
  has ``layers_per_block`` entries ``[resnet, attention]`` and (except the last level) one downsampler entry;
  each up level has ``layers_per_block + 1`` entries ``[resnet, attention, upsampler]``. Resnets use
  ``in_layers.{0,2}`` / ``emb_layers.1`` / ``out_layers.{0,3}`` / ``skip_connection``; attention blocks share
  their inner names with diffusers' ``Transformer2DModel``.
* **AnimateDiff motion modules** (``mm_sd_v15*.ckpt``; also AnimateAnyone's ``motion_module.pth`` and the motion
  part of its ``denoising_unet.pth``) <-> diffusers ``MotionModules`` inside
  :class:`~diffusers.UNetMotionModel`: drop ``temporal_transformer.``; ``attention_blocks.{0,1}`` ->
  ``attn{1,2}``; ``norms.{0,1}`` -> ``norm{1,2}``; ``ff_norm`` -> ``norm3``. The fixed sinusoidal
  ``pos_encoder.pe`` buffers are not weights; diffusers recomputes them (their length gives
  ``motion_max_seq_length``).
* **AnimateAnyone** (Moore-AnimateAnyone's ``UNet3DConditionModel`` / ``PoseGuider``): the spatial keys of
  ``denoising_unet.pth`` and all of ``reference_unet.pth`` already use diffusers names (its inflated convs /
  group norms are ``nn.Conv2d`` / ``nn.GroupNorm`` subclasses with the same parameters), its motion keys use the
  AnimateDiff layout above, and ``pose_guider.pth`` (``conv_in``, ``blocks.N``, ``conv_out``) matches
  :class:`~covog_diffusers.models.MultiHumanPoseEncoder` key for key.

Every converter returns what it could not place, so callers can report unmatched keys instead of silently
dropping them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = [
    "LDM_UNET_PREFIX",
    "ConversionResult",
    "LoadReport",
    "animatediff_motion_to_diffusers",
    "diffusers_motion_to_animatediff",
    "diffusers_unet_to_ldm",
    "ldm_unet_key_map",
    "ldm_unet_to_diffusers",
    "load_into",
    "motion_config_from_animatediff",
    "pose_guider_config_from_state_dict",
    "split_animate_anyone_unet",
    "unwrap_checkpoint",
]

LDM_UNET_PREFIX = "model.diffusion_model."

_TOP_LEVEL = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


@dataclass
class ConversionResult:
    """A converted state dict plus the source keys nothing mapped to and the target keys nothing filled."""

    state_dict: dict[str, torch.Tensor]
    unmatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    """What :func:`load_into` did: keys loaded, model keys left as they were, checkpoint keys not used."""

    component: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        def head(keys):
            shown = ", ".join(keys[:limit])
            return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")

        text = f"{self.component}: {len(self.loaded)} tensors loaded"
        if self.missing:
            text += f"; {len(self.missing)} model keys not in the checkpoint (kept as initialised): {head(self.missing)}"
        if self.unexpected:
            text += f"; {len(self.unexpected)} checkpoint keys unmatched (ignored): {head(self.unexpected)}"
        return text

    def as_dict(self) -> dict:
        return {
            "component": self.component,
            "loaded": len(self.loaded),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
        }


def unwrap_checkpoint(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint (``state_dict`` / ``module`` / ``model`` wrappers removed)."""
    for _ in range(3):
        if not isinstance(checkpoint, Mapping):
            break
        if any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            break
        for wrapper in ("state_dict", "module", "model"):
            if isinstance(checkpoint.get(wrapper), Mapping):
                checkpoint = checkpoint[wrapper]
                break
        else:
            break
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint is a {type(checkpoint).__name__}, expected a dict of tensors")
    return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


# ----------------------------------------------------------------------------------------------- SD UNet (LDM)


def _layers(config) -> list[int]:
    layers = config["layers_per_block"]
    count = len(config["down_block_types"])
    return [int(layers)] * count if isinstance(layers, int) else [int(n) for n in layers]


def _resnet_suffix(rest: str) -> str:
    head, _, tail = rest.partition(".")
    if head not in _RESNET:
        raise KeyError(rest)
    return f"{_RESNET[head]}.{tail}"


def _ldm_key(key: str, config, up_has_attention: list[bool]) -> str:
    for diffusers_name, ldm_name in _TOP_LEVEL.items():
        if key.startswith(diffusers_name + "."):
            return ldm_name + key[len(diffusers_name) :]
    layers = _layers(config)
    starts = [1]  # first input_blocks index of each down level
    for n in layers[:-1]:
        starts.append(starts[-1] + n + 1)
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = starts[level] + j
        return (
            f"input_blocks.{index}.0.{_resnet_suffix(rest)}"
            if kind == "resnets"
            else f"input_blocks.{index}.1.{rest}"
        )
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        level = int(m[1])
        return f"input_blocks.{starts[level] + layers[level]}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key):
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * j}.{_resnet_suffix(rest)}"
        return f"middle_block.{2 * j + 1}.{rest}"
    up_layers = [n + 1 for n in reversed(layers)]
    up_starts = [0]
    for n in up_layers[:-1]:
        up_starts.append(up_starts[-1] + n)
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        index = up_starts[level] + j
        if kind == "resnets":
            return f"output_blocks.{index}.0.{_resnet_suffix(rest)}"
        return f"output_blocks.{index}.1.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        level = int(m[1])
        index = up_starts[level] + up_layers[level] - 1
        slot = 2 if up_has_attention[level] else 1
        return f"output_blocks.{index}.{slot}.conv.{m[2]}"
    raise KeyError(key)


def ldm_unet_key_map(unet_or_config, keys=None, prefix: str = LDM_UNET_PREFIX) -> dict[str, str]:
    """``{diffusers key: LDM key}`` for every parameter of a diffusers ``UNet2DConditionModel`` (or a
    ``UNetMotionModel``'s spatial part). ``unet_or_config`` is the model, or its config with ``keys`` given."""
    if isinstance(unet_or_config, torch.nn.Module):
        config = unet_or_config.config
        keys = list(unet_or_config.state_dict().keys()) if keys is None else list(keys)
    else:
        config = unet_or_config
        if keys is None:
            raise ValueError("pass the model's state dict keys with a config")
    up_has_attention = ["CrossAttn" in name for name in config["up_block_types"]]
    mapping = {}
    for key in keys:
        if "motion_modules" in key:
            continue
        try:
            mapping[key] = prefix + _ldm_key(key, config, up_has_attention)
        except KeyError:
            continue  # not part of the SD UNet (e.g. CovOG's audio drivers)
    return mapping


def ldm_unet_to_diffusers(checkpoint: Mapping, unet, prefix: str = LDM_UNET_PREFIX) -> ConversionResult:
    """Convert an original SD checkpoint's UNet (``model.diffusion_model.*``; VAE / text-encoder / EMA keys of
    a full checkpoint are ignored, not reported) to ``unet``'s diffusers key names."""
    tensors = unwrap_checkpoint(checkpoint)
    if not any(k.startswith(prefix) for k in tensors):
        raise ValueError(
            f"no UNet weights with the LDM prefix {prefix!r} in this checkpoint "
            f"(first keys: {sorted(tensors)[:5]}); is it a diffusers UNet file instead?"
        )
    mapping = ldm_unet_key_map(unet, prefix=prefix)
    converted, missing = {}, []
    for diffusers_key, ldm_key in mapping.items():
        if ldm_key in tensors:
            converted[diffusers_key] = tensors[ldm_key]
        else:
            missing.append(diffusers_key)
    used = set(mapping.values())
    unmatched = sorted(k for k in tensors if k.startswith(prefix) and k not in used)
    return ConversionResult(converted, unmatched, missing)


def diffusers_unet_to_ldm(state_dict: Mapping, unet_or_config, prefix: str = LDM_UNET_PREFIX) -> dict:
    """Inverse of :func:`ldm_unet_to_diffusers` (used to write original-layout checkpoints, e.g. in tests)."""
    config = unet_or_config.config if isinstance(unet_or_config, torch.nn.Module) else unet_or_config
    mapping = ldm_unet_key_map(config, keys=list(state_dict), prefix=prefix)
    unmapped = [k for k in state_dict if k not in mapping and "motion_modules" not in k]
    if unmapped:
        raise ValueError(f"no LDM name for {len(unmapped)} keys, e.g. {unmapped[:3]}")
    return {mapping[k]: v for k, v in state_dict.items() if k in mapping}


# ------------------------------------------------------------------------------------- AnimateDiff motion modules

_MOTION_RENAMES = [
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".temporal_transformer.", "."),
]


def _is_motion_key(key: str) -> bool:
    return ".motion_modules." in f".{key}"


def animatediff_motion_to_diffusers(checkpoint: Mapping) -> ConversionResult:
    """Rename AnimateDiff motion-module keys to diffusers'. ``pos_encoder.pe`` buffers are dropped (diffusers
    recomputes the same sinusoids); keys that are not motion-module keys are returned as ``unmatched``."""
    tensors = unwrap_checkpoint(checkpoint)
    converted, unmatched = {}, []
    for key, value in tensors.items():
        if not _is_motion_key(key):
            unmatched.append(key)
            continue
        if ".pos_encoder." in key:
            continue
        new = f".{key}"
        for old, replacement in _MOTION_RENAMES:
            new = new.replace(old, replacement)
        converted[new[1:]] = value
    return ConversionResult(converted, sorted(unmatched))


def diffusers_motion_to_animatediff(state_dict: Mapping, max_seq_length: int | None = None) -> dict:
    """Inverse of :func:`animatediff_motion_to_diffusers` for the motion keys of a ``UNetMotionModel`` /
    ``MotionAdapter`` state dict. With ``max_seq_length`` the ``pos_encoder.pe`` buffers are written too (as in
    the original checkpoints)."""
    out = {}
    for key, value in state_dict.items():
        if not _is_motion_key(key) or key.endswith("pos_embed.pe"):
            continue
        new = re.sub(r"(motion_modules\.\d+)\.", r"\1.temporal_transformer.", f".{key}")
        new = new.replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1.")
        new = (
            new.replace(".norm1.", ".norms.0.")
            .replace(".norm2.", ".norms.1.")
            .replace(".norm3.", ".ff_norm.")
        )
        out[new[1:]] = value
        if max_seq_length and new.endswith(".attention_blocks.0.to_q.weight"):
            dim = value.shape[1]
            for block in (0, 1):
                pe_key = new[1:].replace(
                    ".attention_blocks.0.to_q.weight", f".attention_blocks.{block}.pos_encoder.pe"
                )
                out[pe_key] = _sinusoids(max_seq_length, dim)
    return out


def _sinusoids(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
    pe = torch.zeros(1, length, dim)
    pe[0, :, 0::2] = torch.sin(position * div)
    pe[0, :, 1::2] = torch.cos(position * div)
    return pe


def motion_config_from_animatediff(checkpoint: Mapping) -> dict:
    """UNetMotionModel config entries that the motion checkpoint determines: ``use_motion_mid_block``,
    ``motion_max_seq_length`` (from the ``pos_encoder.pe`` length, when present) and the number of temporal
    transformer layers per block. (Head counts are not recoverable from the weights; AnimateDiff uses 8.)"""
    tensors = unwrap_checkpoint(checkpoint)
    config: dict = {"use_motion_mid_block": any(k.startswith("mid_block.motion_modules.") for k in tensors)}
    lengths = {v.shape[1] for k, v in tensors.items() if k.endswith("pos_encoder.pe") and v.ndim == 3}
    if len(lengths) > 1:
        raise ValueError(
            f"motion module checkpoint has positional encodings of different lengths {sorted(lengths)}"
        )
    if lengths:
        config["motion_max_seq_length"] = int(lengths.pop())
    blocks = {
        int(m[1])
        for k in tensors
        if (
            m := re.search(
                r"^down_blocks\.\d+\.motion_modules\.\d+\.temporal_transformer\.transformer_blocks\.(\d+)\.",
                k,
            )
        )
    }
    if blocks:
        config["temporal_transformer_layers_per_block"] = max(blocks) + 1
    return config


# ------------------------------------------------------------------------------------------------ AnimateAnyone


def split_animate_anyone_unet(checkpoint: Mapping) -> tuple[dict, dict]:
    """Split an AnimateAnyone ``denoising_unet.pth`` into (spatial keys, already diffusers names; motion keys,
    AnimateDiff layout)."""
    tensors = unwrap_checkpoint(checkpoint)
    spatial = {k: v for k, v in tensors.items() if not _is_motion_key(k)}
    motion = {k: v for k, v in tensors.items() if _is_motion_key(k)}
    return spatial, motion


def pose_guider_config_from_state_dict(state_dict: Mapping) -> dict:
    """``MultiHumanPoseEncoder`` config (``conditioning_channels``, ``block_out_channels``, ``out_channels``)
    read off AnimateAnyone ``PoseGuider`` weights (``conv_in``, ``blocks.{2i,2i+1}``, ``conv_out``)."""
    tensors = unwrap_checkpoint(state_dict)
    try:
        conv_in = tensors["conv_in.weight"]
        conv_out = tensors["conv_out.weight"]
    except KeyError as error:
        raise ValueError(
            f"not a PoseGuider state dict: no {error.args[0]!r} (keys: {sorted(tensors)[:6]})"
        ) from None
    channels = [int(conv_in.shape[0])]
    index = 1
    while f"blocks.{index}.weight" in tensors:
        channels.append(int(tensors[f"blocks.{index}.weight"].shape[0]))
        index += 2
    # InflatedConv3d weights are plain 2-D conv weights; a real Conv3d would have 5 dims.
    if conv_in.ndim != 4:
        raise ValueError(
            f"PoseGuider conv_in.weight has shape {tuple(conv_in.shape)}, expected a 2-D conv (4 dims)"
        )
    return {
        "conditioning_channels": int(conv_in.shape[1]),
        "block_out_channels": tuple(channels),
        "out_channels": int(conv_out.shape[0]),
    }


# --------------------------------------------------------------------------------------------------- loading


def load_into(
    model: torch.nn.Module, state_dict: Mapping, component: str, strict_shapes: bool = True
) -> LoadReport:
    """Copy the tensors of ``state_dict`` whose names exist in ``model``; report missing and unexpected keys.

    A name that exists on both sides with a different shape is an error (naming the key and both shapes):
    that is a wrong config, never something to skip silently.
    """
    own = model.state_dict()
    report = LoadReport(component)
    usable = {}
    mismatched = []
    for key, value in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            usable[key] = value.to(dtype=own[key].dtype)
    if mismatched and strict_shapes:
        raise ValueError(
            f"{component}: {len(mismatched)} tensors have the wrong shape for this config, e.g. "
            + "; ".join(mismatched[:3])
        )
    model.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(k for k in own if k not in usable)
    report.unexpected.sort()
    return report

"""Assemble a full-size CovOG pipeline directory from local pretrained checkpoints (``covog assemble``).

Sources (local paths only; nothing is downloaded):

* ``sd15``: the Stable Diffusion 1.5 UNet: a diffusers folder (``unet/`` inside a pipeline folder, or the UNet
  folder itself), or one ``.safetensors`` / ``.ckpt`` file in the original LDM layout
  (``model.diffusion_model.*``) or with diffusers UNet keys. Its spatial weights initialise BOTH the
  ReferenceNet and the DenoisingNet.
* ``vae``: sd-vae-ft-mse (an ``AutoencoderKL`` folder).
* ``image_encoder``: a ``CLIPVisionModelWithProjection`` folder (``preprocessor_config.json`` beside it or in a
  sibling ``feature_extractor/`` is used when present; otherwise CLIP's standard 224 px preprocessing).
* ``wav2vec2``: wav2vec2-base-960h (a ``Wav2Vec2Model`` / ``Wav2Vec2ForCTC`` folder).
* ``motion_module``: an AnimateDiff motion module (``mm_sd_v15_v2.ckpt`` layout, ``.ckpt`` / ``.pth`` /
  ``.safetensors``) or a diffusers ``MotionAdapter`` folder.
* ``animate_anyone`` (optional): a folder with any of AnimateAnyone's ``denoising_unet.pth``,
  ``reference_unet.pth``, ``pose_guider.pth``, ``motion_module.pth``; they override the weights above
  (``motion_module.pth`` last, as it is the stage-2 result).

CovOG-only parts start fresh: the Interactive Audio Drivers (zero-initialised output, so the assembled model
behaves like AnimateAnyone until trained), the audio projection and the reference-pose adaptor
(zero-initialised output conv). Every load is reported: tensors loaded, model keys left as initialised, and
checkpoint keys that matched nothing (``assembly_report.json`` in the output folder). Pickled checkpoints are
read with ``torch.load(weights_only=True)``. The folder is written to a temporary sibling and renamed into place
when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mit_dataset.atomic import atomic_path, remove_stale_temporaries

from .checkpoint_mapping import (
    LDM_UNET_PREFIX,
    LoadReport,
    animatediff_motion_to_diffusers,
    ldm_unet_to_diffusers,
    load_into,
    motion_config_from_animatediff,
    pose_guider_config_from_state_dict,
    split_animate_anyone_unet,
    unwrap_checkpoint,
)
from .models.casting import cast_to_dtype

__all__ = [
    "ANIMATE_ANYONE_FILES",
    "SD15_UNET_CONFIG",
    "AssemblyError",
    "AssemblyReport",
    "assemble_pipeline",
    "build_pipeline",
    "load_checkpoint_file",
    "load_motion_module",
    "load_sd_unet",
]

#: diffusers config of the Stable Diffusion 1.5 UNet, used for single-file (LDM layout) checkpoints.
SD15_UNET_CONFIG = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "center_input_sample": False,
}

ANIMATE_ANYONE_FILES = ("denoising_unet.pth", "reference_unet.pth", "pose_guider.pth", "motion_module.pth")
_WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt", ".bin")


class AssemblyError(ValueError):
    """A source path or checkpoint cannot be used; the message names the argument and the file."""


@dataclass
class AssemblyReport:
    """What went into an assembled pipeline: the sources, every load's report, and notes."""

    sources: dict[str, str] = field(default_factory=dict)
    loads: list[LoadReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output: str | None = None

    def add(self, report: LoadReport) -> LoadReport:
        self.loads.append(report)
        return report

    def summary(self) -> str:
        lines = [f"{name}: {path}" for name, path in self.sources.items()]
        lines += [report.summary() for report in self.loads]
        lines += self.notes
        if self.output:
            lines.append(f"written to {self.output}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "sources": dict(self.sources),
            "loads": [report.as_dict() for report in self.loads],
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------------- file I/O


def _require(path, argument: str) -> Path:
    if path is None:
        raise AssemblyError(f"{argument}: a local path is required")
    path = Path(path).expanduser()
    if not path.exists():
        raise AssemblyError(f"{argument}: {path} does not exist (only local paths are accepted)")
    return path


def load_checkpoint_file(path: str | os.PathLike, argument: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a pickled ``.ckpt`` / ``.pth`` / ``.pt`` / ``.bin`` file read with
    ``torch.load(weights_only=True)`` (no code from the file is executed)."""
    path = _require(path, argument)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types
            raise AssemblyError(f"{argument}: {path} is not a readable safetensors file ({error})") from error
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as error:
        raise AssemblyError(
            f"{argument}: cannot read {path} with torch.load(weights_only=True) ({type(error).__name__}: {error}). "
            "Checkpoints that pickle training objects need converting to .safetensors first."
        ) from error
    try:
        return unwrap_checkpoint(checkpoint)
    except (TypeError, ValueError) as error:
        raise AssemblyError(f"{argument}: {path}: {error}") from error


def _model_folder(path: Path, subfolder: str, argument: str) -> Path:
    """``path`` itself when it holds a ``config.json``, else ``path/subfolder``."""
    if (path / "config.json").is_file():
        return path
    if (path / subfolder / "config.json").is_file():
        return path / subfolder
    raise AssemblyError(f"{argument}: no config.json in {path} or {path / subfolder}")


# ------------------------------------------------------------------------------------------------- components


def load_sd_unet(path, unet_config: dict | str | os.PathLike | None = None, dtype=torch.float32):
    """The SD 1.5 UNet as a diffusers ``UNet2DConditionModel`` plus its :class:`LoadReport`.

    ``path``: a diffusers folder (pipeline or UNet), or one weights file in the LDM layout or with diffusers
    keys. ``unet_config`` (dict, config.json or folder) overrides :data:`SD15_UNET_CONFIG` for single files.
    """
    from diffusers import UNet2DConditionModel

    path = _require(path, "sd15")
    if path.is_dir():
        folder = _model_folder(path, "unet", "sd15")
        unet = cast_to_dtype(UNet2DConditionModel.from_pretrained(folder, local_files_only=True), dtype)
        report = LoadReport("reference_unet/denoising_unet spatial (SD 1.5 UNet)")
        report.loaded = sorted(unet.state_dict())
        return unet, report, str(folder)
    if path.suffix not in _WEIGHT_SUFFIXES:
        raise AssemblyError(
            f"sd15: {path} is neither a diffusers folder nor a {'/'.join(_WEIGHT_SUFFIXES)} file"
        )
    config = (
        _resolve_config(unet_config, "unet_config") if unet_config is not None else dict(SD15_UNET_CONFIG)
    )
    unet = cast_to_dtype(UNet2DConditionModel.from_config(config), dtype)
    tensors = load_checkpoint_file(path, "sd15")
    if any(k.startswith(LDM_UNET_PREFIX) for k in tensors):
        result = ldm_unet_to_diffusers(tensors, unet)
        state_dict, unmatched = result.state_dict, result.unmatched
    elif "conv_in.weight" in tensors:
        state_dict, unmatched = tensors, []
    else:
        raise AssemblyError(
            f"sd15: {path} has neither LDM UNet keys ({LDM_UNET_PREFIX}...) nor diffusers UNet keys (conv_in.weight)"
        )
    report = _load_checked(
        unet, state_dict, "reference_unet/denoising_unet spatial (SD 1.5 UNet)", f"sd15: {path}"
    )
    report.unexpected = sorted(set(report.unexpected) | set(unmatched))
    return unet, report, str(path)


def _resolve_config(config, argument: str) -> dict:
    if isinstance(config, dict):
        return dict(config)
    path = Path(config)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise AssemblyError(f"{argument}: {path} is not a config.json")
    return json.loads(path.read_text())


def _load_checked(model, state_dict, component: str, where: str, scope=None) -> LoadReport:
    try:
        report = load_into(model, state_dict, component)
    except ValueError as error:
        raise AssemblyError(f"{where}: {error}") from error
    if scope is not None:
        report.missing = [k for k in report.missing if scope(k)]
    report.missing = [k for k in report.missing if not k.endswith("pos_embed.pe")]  # fixed sinusoids
    return report


def _is_motion(key: str) -> bool:
    return "motion_modules." in key


def load_motion_module(path) -> tuple[dict[str, torch.Tensor], dict, list[str], str]:
    """Motion-module weights with diffusers names, the UNetMotionModel config they imply, unmatched keys, and
    the resolved source path. ``path``: AnimateDiff checkpoint file or diffusers ``MotionAdapter`` folder."""
    path = _require(path, "motion_module")
    if path.is_dir():
        from diffusers import MotionAdapter

        adapter = MotionAdapter.from_pretrained(
            _model_folder(path, "motion_adapter", "motion_module"), local_files_only=True
        )
        config = {
            "use_motion_mid_block": adapter.config.use_motion_mid_block,
            "motion_max_seq_length": adapter.config.motion_max_seq_length,
            "motion_num_attention_heads": adapter.config.motion_num_attention_heads,
            "temporal_transformer_layers_per_block": adapter.config.motion_transformer_layers_per_block,
        }
        return dict(adapter.state_dict()), config, [], str(path)
    tensors = load_checkpoint_file(path, "motion_module")
    result = animatediff_motion_to_diffusers(tensors)
    if not result.state_dict:
        raise AssemblyError(
            f"motion_module: {path} holds no AnimateDiff motion-module keys (*.motion_modules.*); "
            f"first keys: {sorted(tensors)[:5]}"
        )
    return result.state_dict, motion_config_from_animatediff(tensors), result.unmatched, str(path)


def _feature_extractor(image_encoder_dir: Path):
    from transformers import CLIPImageProcessor

    for candidate in (image_encoder_dir, image_encoder_dir.parent / "feature_extractor"):
        if (candidate / "preprocessor_config.json").is_file():
            return CLIPImageProcessor.from_pretrained(candidate, local_files_only=True), str(candidate)
    return CLIPImageProcessor(), None  # CLIP defaults: 224 px, CLIP mean/std


def _scheduler():
    """The one CovOG noise schedule (DDIM, v-prediction, trailing, zero terminal SNR), as in training."""
    from .pipelines import create_scheduler

    return create_scheduler()


# ------------------------------------------------------------------------------------------------- assembly


def build_pipeline(
    sd15,
    vae,
    image_encoder,
    wav2vec2,
    motion_module,
    animate_anyone=None,
    unet_config=None,
    denoising_config: dict | None = None,
    audio_projection_config: dict | None = None,
    pose_config: dict | None = None,
    dtype: torch.dtype = torch.float32,
):
    """Build the CovOG pipeline in memory from local checkpoints. Returns ``(pipeline, AssemblyReport)``.

    ``denoising_config`` overrides CovOGDenoisingNet config entries (``use_iad=False``, IAD sizes, ...);
    ``audio_projection_config`` / ``pose_config`` override the fresh AudioProjection / pose encoders' configs
    (a ``pose_guider.pth`` determines the pose guider's own config).
    """
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

    from .models import AudioProjection, CovOGDenoisingNet, MultiHumanPoseEncoder
    from .pipelines import CovOGPipeline

    report = AssemblyReport()
    # Check every path before the slow loads start.
    paths = {
        "sd15": _require(sd15, "sd15"),
        "vae": _require(vae, "vae"),
        "image_encoder": _require(image_encoder, "image_encoder"),
        "wav2vec2": _require(wav2vec2, "wav2vec2"),
        "motion_module": _require(motion_module, "motion_module"),
    }
    aa_files = {}
    if animate_anyone is not None:
        aa_dir = _require(animate_anyone, "animate_anyone")
        if not aa_dir.is_dir():
            raise AssemblyError(f"animate_anyone: {aa_dir} is not a folder")
        aa_files = {name: aa_dir / name for name in ANIMATE_ANYONE_FILES if (aa_dir / name).is_file()}
        if not aa_files:
            raise AssemblyError(f"animate_anyone: {aa_dir} holds none of {', '.join(ANIMATE_ANYONE_FILES)}")

    # 1. SD 1.5 UNet -> ReferenceNet; motion module -> DenoisingNet (spatial weights copied from the same UNet).
    reference_unet, unet_report, report.sources["sd15"] = load_sd_unet(paths["sd15"], unet_config, dtype)
    report.add(unet_report)
    motion_state, motion_config, motion_unmatched, report.sources["motion_module"] = load_motion_module(
        paths["motion_module"]
    )
    # The UNetMotionModel config of the SD UNet, then the motion module's and the caller's overrides (passed as
    # from_config kwargs: entries of the base config that were defaults would otherwise win).
    base = CovOGDenoisingNet.from_unet2d(reference_unet, None, load_weights=False)
    overrides = {**motion_config, **(denoising_config or {})}
    denoising_unet = cast_to_dtype(CovOGDenoisingNet.from_config(base.config, **overrides), dtype)
    del base
    spatial_report = _load_checked(
        denoising_unet,
        reference_unet.state_dict(),
        "denoising_unet spatial (copy of the SD 1.5 UNet)",
        f"sd15: {paths['sd15']}",
        scope=lambda k: not _is_motion(k) and not k.startswith("audio_drivers."),
    )
    if spatial_report.missing or spatial_report.unexpected:
        raise AssemblyError(f"sd15: the UNet does not fit the DenoisingNet: {spatial_report.summary()}")
    report.add(spatial_report)
    motion_report = _load_checked(
        denoising_unet,
        motion_state,
        "denoising_unet motion modules (AnimateDiff)",
        f"motion_module: {paths['motion_module']}",
        scope=_is_motion,
    )
    motion_report.unexpected = sorted(set(motion_report.unexpected) | set(motion_unmatched))
    report.add(motion_report)

    # 2. Frozen encoders.
    vae_dir = _model_folder(paths["vae"], "vae", "vae")
    vae_model = cast_to_dtype(AutoencoderKL.from_pretrained(vae_dir, local_files_only=True), dtype)
    report.sources["vae"] = str(vae_dir)
    clip_dir = _model_folder(paths["image_encoder"], "image_encoder", "image_encoder")
    clip = cast_to_dtype(
        CLIPVisionModelWithProjection.from_pretrained(clip_dir, local_files_only=True), dtype
    )
    report.sources["image_encoder"] = str(clip_dir)
    feature_extractor, fe_source = _feature_extractor(clip_dir)
    if fe_source is None:
        report.notes.append(
            "feature_extractor: no preprocessor_config.json found; using CLIP's 224 px defaults"
        )
    w2v_dir = _model_folder(paths["wav2vec2"], "audio_encoder", "wav2vec2")
    audio_encoder = cast_to_dtype(Wav2Vec2Model.from_pretrained(w2v_dir, local_files_only=True), dtype)
    report.sources["wav2vec2"] = str(w2v_dir)

    # 3. Fresh CovOG parts.
    projection_config = {
        "num_layers": audio_encoder.config.num_hidden_layers,
        "feature_dim": audio_encoder.config.hidden_size,
        "cross_attention_dim": denoising_unet.config.audio_cross_attention_dim,
        **(audio_projection_config or {}),
    }
    audio_projection = cast_to_dtype(AudioProjection(**projection_config), dtype)
    pose_kwargs = {"out_channels": reference_unet.config.block_out_channels[0], **(pose_config or {})}
    pose_guider = cast_to_dtype(MultiHumanPoseEncoder(**pose_kwargs), dtype)
    pose_adaptor = cast_to_dtype(MultiHumanPoseEncoder(**pose_kwargs), dtype)

    # 4. AnimateAnyone overrides.
    if aa_files:
        report.sources["animate_anyone"] = str(Path(animate_anyone))
    if "reference_unet.pth" in aa_files:
        state = load_checkpoint_file(aa_files["reference_unet.pth"], "animate_anyone")
        report.add(
            _load_checked(
                reference_unet, state, "reference_unet (AnimateAnyone)", str(aa_files["reference_unet.pth"])
            )
        )
    if "denoising_unet.pth" in aa_files:
        spatial, motion = split_animate_anyone_unet(
            load_checkpoint_file(aa_files["denoising_unet.pth"], "animate_anyone")
        )
        converted = animatediff_motion_to_diffusers(motion).state_dict if motion else {}
        report.add(
            _load_checked(
                denoising_unet,
                {**spatial, **converted},
                "denoising_unet (AnimateAnyone)",
                str(aa_files["denoising_unet.pth"]),
                scope=lambda k: not k.startswith("audio_drivers.") and (bool(motion) or not _is_motion(k)),
            )
        )
    if "motion_module.pth" in aa_files:
        result = animatediff_motion_to_diffusers(
            load_checkpoint_file(aa_files["motion_module.pth"], "animate_anyone")
        )
        aa_motion = _load_checked(
            denoising_unet,
            result.state_dict,
            "denoising_unet motion modules (AnimateAnyone)",
            str(aa_files["motion_module.pth"]),
            scope=_is_motion,
        )
        aa_motion.unexpected = sorted(set(aa_motion.unexpected) | set(result.unmatched))
        report.add(aa_motion)
    if "pose_guider.pth" in aa_files:
        state = load_checkpoint_file(aa_files["pose_guider.pth"], "animate_anyone")
        try:
            guider_config = pose_guider_config_from_state_dict(state)
        except ValueError as error:
            raise AssemblyError(f"{aa_files['pose_guider.pth']}: {error}") from error
        pose_guider = cast_to_dtype(MultiHumanPoseEncoder(**guider_config), dtype)
        report.add(
            _load_checked(pose_guider, state, "pose_guider (AnimateAnyone)", str(aa_files["pose_guider.pth"]))
        )
    if denoising_unet.audio_drivers is not None:
        report.notes.append(
            f"denoising_unet: {len(denoising_unet.audio_drivers)} Interactive Audio Drivers start fresh "
            "(zero-initialised output: no effect until trained)"
        )
    report.notes.append(
        "audio_projection and pose_adaptor start fresh (pose_adaptor output is zero-initialised)"
    )

    pipeline = CovOGPipeline(
        vae=vae_model,
        image_encoder=clip,
        feature_extractor=feature_extractor,
        reference_unet=reference_unet,
        denoising_unet=denoising_unet,
        pose_guider=pose_guider,
        pose_adaptor=pose_adaptor,
        audio_encoder=audio_encoder,
        audio_projection=audio_projection,
        scheduler=_scheduler(),
    )
    return pipeline, report


def assemble_pipeline(
    sd15,
    vae,
    image_encoder,
    wav2vec2,
    motion_module,
    out,
    animate_anyone=None,
    unet_config=None,
    denoising_config: dict | None = None,
    audio_projection_config: dict | None = None,
    pose_config: dict | None = None,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> AssemblyReport:
    """Build the pipeline (:func:`build_pipeline`) and save it to ``out`` with ``save_pretrained`` (safetensors)
    plus ``assembly_report.json``. The folder appears only when complete; an existing ``out`` is an error unless
    ``overwrite``."""
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise AssemblyError(f"out: {out} already exists (pass overwrite=True / --overwrite to replace it)")
    pipeline, report = build_pipeline(
        sd15,
        vae,
        image_encoder,
        wav2vec2,
        motion_module,
        animate_anyone=animate_anyone,
        unet_config=unet_config,
        denoising_config=denoising_config,
        audio_projection_config=audio_projection_config,
        pose_config=pose_config,
        dtype=dtype,
    )
    remove_stale_temporaries(out.parent)
    with atomic_path(out, directory=True, overwrite=overwrite) as staging:
        pipeline.save_pretrained(staging, safe_serialization=True)
        (staging / "assembly_report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    report.output = str(out)
    return report

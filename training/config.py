"""Training configuration: YAML files read with ``yaml.safe_load`` into typed dataclasses.

A config file has five sections (every key optional unless marked required; defaults are the paper's recipe:
640x384, 15-frame clips in stage 2, batch 4, 30k steps, AdamW at 1e-5, gradient clipping 1.0, noise offset
0.05, min-SNR gamma 5, 10 % conditioning dropout, v-prediction on the pipeline's own noise schedule):

.. code-block:: yaml

    stage: 1                      # required: 1 = image level (one target frame), 2 = clips
    model:   {pretrained: DIR}    # required: a CovOG pipeline folder (covog assemble / a saved run) or "tiny"
    data:    {dataset: DIR}       # required: an MIT dataset folder (load_dataset)
    training: {...}               # optimiser, schedule, precision, EMA
    output:  {dir: DIR}           # required: run folder (checkpoints, logs, validation videos, the pipeline)

Unknown keys, missing required keys and values of the wrong type raise :class:`ConfigError` naming the file
and the key. Command-line overrides use dotted keys, ``training.max_steps=100``, parsed as YAML values.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

#: Where the packaged configs live, inside the ``training`` package (and, in a clone, at this repo path).
PACKAGED_CONFIG_DIR = "configs"
#: Keys that may change when a run is resumed (how long, how often to save/log/validate, loader workers).
RESUMABLE_CHANGES = (
    "training.max_steps",
    "output.checkpointing_steps",
    "output.checkpoints_total_limit",
    "output.validation_steps",
    "output.logging_steps",
    "data.num_workers",
)
MIXED_PRECISION = ("no", "fp16", "bf16")
REQUIRED = object()  # marker default for required keys


class ConfigError(ValueError):
    """A training config is invalid (the message names the file and key)."""


@dataclass
class ModelConfig:
    #: CovOG pipeline folder (``covog assemble`` output or a saved CovOG), or ``"tiny"`` (random, tests).
    pretrained: str = REQUIRED  # type: ignore[assignment]
    #: Optional ``AutoencoderKL`` folder that replaces the pipeline's VAE (e.g. one fitted to your frames).
    vae: str | None = None
    #: LoRA rank: train only low-rank adapters on the UNets' spatial attention (peft); None = full training.
    lora_rank: int | None = None
    #: LoRA scaling numerator (``lora_alpha / rank``); default: the rank (scale 1).
    lora_alpha: float | None = None
    gradient_checkpointing: bool = False


@dataclass
class DataConfig:
    dataset: str = REQUIRED  # type: ignore[assignment]
    #: Dataset config: ``all``, ``two_human`` or ``multi_human``.
    name: str | None = None
    split: str = "train"
    height: int = 384
    width: int = 640
    #: Frames per sample; stage 1 is image level and needs 1. Default: 1 in stage 1, 15 in stage 2.
    num_frames: int | None = None
    stride: int = 1
    num_workers: int = 2
    #: Leave out clips shorter than a sample (otherwise they are an error before the first step).
    drop_short: bool = False
    #: Split and clip of the validation video (default: the first clip of the first split not trained on).
    validation_split: str | None = None
    validation_clip: str | None = None
    cache_dir: str | None = None


@dataclass
class TrainingConfig:
    max_steps: int = 30_000
    #: Per-process batch size (the paper's 4).
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    #: A ``diffusers.optimization.get_scheduler`` name.
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    max_grad_norm: float = 1.0
    #: Per-sample, per-channel offset noise scale (Guttenberg 2023).
    noise_offset: float = 0.05
    #: Min-SNR loss weighting gamma (Hang et al. 2023); None = plain MSE.
    snr_gamma: float | None = 5.0
    #: Fraction of samples trained as the unconditional branch (reference dropped, CLIP embedding zeroed).
    uncond_probability: float = 0.1
    mixed_precision: str = "no"
    seed: int = 0
    use_ema: bool = False
    ema_decay: float = 0.9999


@dataclass
class OutputConfig:
    dir: str = REQUIRED  # type: ignore[assignment]
    checkpointing_steps: int = 1000
    #: Checkpoints kept (older ones are deleted); None keeps all.
    checkpoints_total_limit: int | None = 3
    #: Write a validation video every N steps (0 = never; one is always written at the end).
    validation_steps: int = 1000
    validation_frames: int = 16
    validation_inference_steps: int = 25
    validation_guidance_scale: float = 3.5
    logging_steps: int = 10
    #: ``"tensorboard"`` or ``"none"``.
    report_to: str = "tensorboard"
    #: Write one line per sample a process trained on to ``logs/samples-process{i}.jsonl``.
    log_samples: bool = False


@dataclass
class TrainConfig:
    stage: int = REQUIRED  # type: ignore[assignment]
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def num_frames(self) -> int:
        """Frames per sample (1 in stage 1)."""
        if self.data.num_frames is not None:
            return self.data.num_frames
        return 1 if self.stage == 1 else 15

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "training": TrainingConfig, "output": OutputConfig}


def _type_name(kind) -> str:
    return getattr(kind, "__name__", str(kind).replace("typing.", ""))


def _coerce(value: Any, kind, where: str) -> Any:
    """``value`` checked against the field type ``kind`` (ints accepted for floats; ``X | None``)."""
    args = typing.get_args(kind)
    if args and type(None) in args:
        if value is None:
            return None
        kind = next(arg for arg in args if arg is not type(None))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {_type_name(kind)}, got {value!r}")
    return value


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys: {names}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in SECTIONS and cls is TrainConfig:
            kwargs[f.name] = _build(SECTIONS[f.name], values.get(f.name) or {}, key)
        elif f.name in values:
            kwargs[f.name] = _coerce(values[f.name], hints[f.name], key)
        elif f.default is REQUIRED:
            raise ConfigError(f"missing required key {key!r}")
    return cls(**kwargs)


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """``["training.max_steps=10", ...]`` applied to a raw config mapping (values parsed as YAML)."""
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected KEY=VALUE, e.g. training.max_steps=100")
        parts = key.split(".")
        target = values
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {override!r}: {part!r} is not a section")
        target[parts[-1]] = yaml.safe_load(text)
    return values


def config_from_dict(values: dict, source: str = "config", overrides: list[str] = ()) -> TrainConfig:
    """A validated :class:`TrainConfig` from a raw mapping (``source`` names it in errors)."""
    values = apply_overrides(dict(values), list(overrides))
    try:
        config = _build(TrainConfig, values, "")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    validate(config, source)
    return config


def packaged_config_names() -> list[str]:
    """Names of the configs shipped inside the ``training`` package (``tiny-stage1``, ``stage2``, ...)."""
    folder = resources.files("training").joinpath(PACKAGED_CONFIG_DIR)
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """The config file ``path`` names, from any working directory.

    A path that exists is used as is. Otherwise a bare name (``tiny-stage1``, ``stage2.yaml``) or the documented
    repo-relative path ``training/configs/NAME.yaml`` resolves to the file shipped in the package
    (:mod:`importlib.resources`), so the README's commands also work after a non-editable ``pip install``.

    Raises:
        ConfigError: neither exists; the message lists the packaged config names.
    """
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts
    bare = len(parts) == 1 or parts[:-1] == ("training", PACKAGED_CONFIG_DIR)
    if bare:
        name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
        packaged = resources.files("training").joinpath(PACKAGED_CONFIG_DIR, name)
        if packaged.is_file():
            return Path(str(packaged))
    raise ConfigError(
        f"cannot read training config {path}: no such file, and no packaged config of that name "
        f"(packaged: {', '.join(packaged_config_names())})"
    )


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML training config (``yaml.safe_load``, path resolved by :func:`resolve_config_path`) and apply
    dotted ``overrides``."""
    path = resolve_config_path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"cannot read training config {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
    return config_from_dict(values, str(path), overrides)


def validate(config: TrainConfig, source: str = "config") -> None:
    """Value checks that need no model or data (those come in :func:`training.loop.train`)."""

    def fail(key, message):
        raise ConfigError(f"{source}: {key}: {message}")

    if config.stage not in (1, 2):
        fail("stage", f"must be 1 (image level) or 2 (clips), got {config.stage}")
    if config.stage == 1 and config.num_frames != 1:
        fail("data.num_frames", f"stage 1 trains on single frames (1), got {config.num_frames}")
    positive = {
        "data.height": config.data.height,
        "data.width": config.data.width,
        "data.stride": config.data.stride,
        "data.num_frames": config.num_frames,
        "training.max_steps": config.training.max_steps,
        "training.batch_size": config.training.batch_size,
        "training.gradient_accumulation_steps": config.training.gradient_accumulation_steps,
        "output.checkpointing_steps": config.output.checkpointing_steps,
        "output.logging_steps": config.output.logging_steps,
        "output.validation_frames": config.output.validation_frames,
        "output.validation_inference_steps": config.output.validation_inference_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            fail(key, f"must be positive, got {value}")
    if config.training.learning_rate <= 0:
        fail("training.learning_rate", f"must be positive, got {config.training.learning_rate}")
    if config.data.num_workers < 0:
        fail("data.num_workers", f"must be >= 0, got {config.data.num_workers}")
    if config.output.validation_steps < 0:
        fail("output.validation_steps", f"must be >= 0, got {config.output.validation_steps}")
    limit = config.output.checkpoints_total_limit
    if limit is not None and limit < 1:
        fail("output.checkpoints_total_limit", f"must be >= 1 or null, got {limit}")
    if not 0.0 <= config.training.uncond_probability < 1.0:
        fail("training.uncond_probability", f"must lie in [0, 1), got {config.training.uncond_probability}")
    if config.training.noise_offset < 0:
        fail("training.noise_offset", f"must be >= 0, got {config.training.noise_offset}")
    if config.training.snr_gamma is not None and config.training.snr_gamma <= 0:
        fail("training.snr_gamma", f"must be positive or null, got {config.training.snr_gamma}")
    if config.training.mixed_precision not in MIXED_PRECISION:
        fail(
            "training.mixed_precision",
            f"must be one of {MIXED_PRECISION}, got {config.training.mixed_precision!r}",
        )
    if config.output.report_to not in ("tensorboard", "none"):
        fail("output.report_to", f"must be 'tensorboard' or 'none', got {config.output.report_to!r}")
    if config.model.lora_rank is not None and config.model.lora_rank <= 0:
        fail("model.lora_rank", f"must be a positive integer, got {config.model.lora_rank}")
    if not 0.0 < config.training.ema_decay < 1.0:
        fail("training.ema_decay", f"must lie in (0, 1), got {config.training.ema_decay}")


def flatten(values: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def incompatible_changes(saved: dict, current: dict) -> dict:
    """Keys whose values differ between a checkpoint's config and the current one, except
    :data:`RESUMABLE_CHANGES`: ``{key: (saved, current)}``."""
    old, new = flatten(saved), flatten(current)
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if key not in RESUMABLE_CHANGES and old.get(key) != new.get(key)
    }

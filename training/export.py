"""What a run leaves behind: the trained pipeline (``save_pretrained``) or LoRA adapter, with a model card.

``{output}/pipeline/`` is a complete :class:`~covog_diffusers.CovOGPipeline` folder that ``covog generate``,
``mit-bench predict`` and ``CovOGPipeline.from_pretrained`` load. It records its native generation size the
diffusers way: the DenoisingNet's ``config.sample_size`` is the training size in latents, ``(height / f,
width / f)`` with ``f`` the VAE factor. A LoRA run writes ``{output}/lora/`` instead
(``pytorch_lora_weights.safetensors``, :meth:`CovOGPipeline.load_lora_weights`). Both are written under a
temporary name and renamed (:func:`mit_dataset.atomic.atomic_path`), and carry a ``README.md`` model card
(``huggingface_hub.ModelCard``) with the training config, data, steps and time.
"""

from __future__ import annotations

from pathlib import Path

from mit_dataset.atomic import atomic_path

PIPELINE_DIR = "pipeline"
LORA_DIR = "lora"


def set_native_size(pipe, height: int, width: int) -> None:
    """Record ``height x width`` as the pipeline's generation size (DenoisingNet ``sample_size`` in latents)."""
    factor = pipe.vae_scale_factor
    pipe.denoising_unet.register_to_config(sample_size=[height // factor, width // factor])


def model_card(config, summary: dict, base_model: str, lora: bool):
    """A ``huggingface_hub.ModelCard``: YAML metadata + the run's command, data, steps, time and config."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name="diffusers",
        license="apache-2.0",
        tags=["covog", "mit-talk", "talking-video", "video-generation"] + (["lora"] if lora else []),
        base_model=None if base_model == "tiny" else base_model,
    )
    what = "LoRA adapter for CovOG" if lora else "CovOG"
    stage = "stage 1, image level" if config.stage == 1 else "stage 2, clips"
    vae = f", VAE `{config.model.vae}`" if config.model.vae else ""
    load = " then `pipe.load_lora_weights(...)`." if lora else "."
    data_line = (
        f"`{config.data.dataset}` (config `{config.data.name or 'all'}`, split `{config.data.split}`, "
        f"{summary['num_clips']} clips), {config.num_frames} frame(s) per sample at {config.data.width}x"
        f"{config.data.height}"
    )
    steps_line = (
        f"{summary['steps']} optimizer steps, batch {config.training.batch_size} x {summary['num_processes']} "
        f"process(es) x {config.training.gradient_accumulation_steps} accumulation"
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {what}, trained with MIT-Talk ({stage})",
        "",
        f"- command: `{summary['command']}`",
        f"- initialised from: `{base_model}`{vae}",
        f"- data: {data_line}",
        f"- steps: {steps_line}",
        f"- seed: {config.training.seed}; final loss {summary['final_loss']:.5f}; time {summary['seconds']:.1f} s",
        "",
        f"Load with `CovOGPipeline.from_pretrained(...)`{load}",
        "",
        "## Training config",
        "",
        "```yaml",
        config.to_yaml().rstrip(),
        "```",
        "",
    ]
    return ModelCard("\n".join(lines))


def save_pipeline(pipe, output_dir, config, summary: dict) -> Path:
    """``pipe.save_pretrained`` + model card into ``{output_dir}/pipeline`` atomically; returns the folder."""
    set_native_size(pipe, config.data.height, config.data.width)
    out = Path(output_dir) / PIPELINE_DIR
    with atomic_path(out, directory=True) as tmp:
        pipe.save_pretrained(tmp)
        model_card(config, summary, config.model.pretrained, lora=False).save(tmp / "README.md")
    return out


def save_lora_adapter(pipe, output_dir, config, summary: dict) -> Path:
    """The UNets' LoRA adapters (diffusers layout) + model card into ``{output_dir}/lora`` atomically."""
    from .lora import save_lora

    out = Path(output_dir) / LORA_DIR
    with atomic_path(out, directory=True) as tmp:
        save_lora(pipe, tmp)
        model_card(config, summary, config.model.pretrained, lora=True).save(tmp / "README.md")
    return out

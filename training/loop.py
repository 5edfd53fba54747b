"""``train(config)``: stage 1 / stage 2 / LoRA training of CovOG with accelerate.

:func:`prepare_run` does everything that can fail on bad input (config, model, resolution, LoRA targets,
dataset fields and clip lengths, resume compatibility) and writes nothing; :func:`train` then builds the
accelerate objects and runs the loop: ``accelerator.accumulate``, backward, gradient clipping, optimizer and
LR-scheduler steps, optional EMA, logging (loss, lr, grad norm, samples/s), atomic checkpoints, validation
videos; at the end the pipeline (or LoRA adapter) is saved with a model card (:mod:`training.export`).
Runs the same under ``accelerate launch`` (DDP, FSDP, DeepSpeed ZeRO-2): the trained components form one
module (:class:`~training.network.CovOGTrainingModel`) and each process reads its own batches
(:mod:`training.data`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mit_dataset.atomic import atomic_write_text

from .checkpointing import check_resumable, resolve_resume, save_checkpoint
from .components import (
    TRAINED_COMPONENTS,
    check_resolution,
    load_pipeline,
    model_fingerprint,
    parameter_table,
    set_trainable,
    stage_trainable,
)
from .config import TrainConfig, flatten
from .data import (
    build_loader,
    build_view,
    check_clip_lengths,
    load_split,
    validation_row,
    view_audio_context,
)
from .export import save_lora_adapter, save_pipeline
from .losses import noise_scheduler_for, weighted_mse
from .network import CovOGTrainingModel
from .step import prepare_step, step_generator


@dataclass
class Run:
    """Everything :func:`prepare_run` checked and loaded."""

    config: TrainConfig
    accelerator: object
    pipe: object
    params: list
    view: object
    loader: object
    fingerprint: str
    use_audio: bool
    resume_from: Path | None = None
    resume_state: dict = field(default_factory=dict)
    validation: tuple | None = None  # (split, row)
    validation_during_training: bool = True


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration

    output = Path(config.output.dir)
    # Stage 1 and LoRA train the ReferenceNet, whose layers after its last banked self-attention input get no
    # gradient (and none at all when a batch drops every reference): DDP must allow unused parameters.
    find_unused = config.stage == 1 or config.model.lora_rank is not None
    return Accelerator(
        gradient_accumulation_steps=config.training.gradient_accumulation_steps,
        mixed_precision=config.training.mixed_precision,
        log_with=None if config.output.report_to == "none" else config.output.report_to,
        project_config=ProjectConfiguration(project_dir=str(output), logging_dir=str(output / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.training.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused)],
    )


def prepare_run(config: TrainConfig, resume: str | None = None, dataloader=None) -> Run:
    """Load and check everything before the first step; nothing is written (errors name the input).
    ``dataloader`` replaces the one built from ``config.data`` (benchmarks feed batches from memory)."""
    from accelerate.utils import DistributedType, set_seed

    accelerator = make_accelerator(config)
    set_seed(config.training.seed)
    pipe = load_pipeline(config.model.pretrained, config.model.vae, seed=config.training.seed)
    check_resolution(pipe, config.data.height, config.data.width)
    fingerprint = model_fingerprint(pipe)
    if config.model.lora_rank is not None:
        from .lora import add_lora_adapters

        params = add_lora_adapters(pipe, config.model.lora_rank, config.model.lora_alpha)
    else:
        params = set_trainable(pipe, stage_trainable(pipe, config.stage))
    if not params:
        raise ValueError(f"stage {config.stage} has nothing to train in this pipeline")
    split, loaded = load_split(
        config.data.dataset, config.data.name, config.data.split, config.data.cache_dir
    )
    view = build_view(split, config, config.training.seed, view_audio_context(pipe, config))
    if not config.data.drop_short:
        check_clip_lengths(split, view.span, config.data.dataset)
    loader = dataloader or build_loader(
        view, config.training.batch_size, config.data.num_workers, accelerator.num_processes
    )
    run = Run(
        config, accelerator, pipe, params, view, loader, fingerprint, config.stage == 2 and pipe.uses_audio
    )
    run.validation = validation_row(loaded, config)  # at every validation_steps and at the end
    if accelerator.distributed_type == DistributedType.FSDP:
        if config.training.use_ema:
            raise ValueError("training.use_ema is not supported with FSDP (the EMA copy would be unsharded)")
        # Sharded weights cannot run the pipeline on one process: validate once, on the gathered result.
        run.validation_during_training = False
    run.resume_from = resolve_resume(resume, config.output.dir)
    if run.resume_from is not None:
        run.resume_state = check_resumable(run.resume_from, config.to_dict(), fingerprint)
    return run


def _frozen_to(pipe, device) -> None:
    """Frozen encoders on the device, kept in their saved dtype (they run under autocast, and the saved
    pipeline must hold them bit-identical)."""
    for name in ("vae", "image_encoder", "audio_encoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to(device)


def train(
    config: TrainConfig, resume: str | None = None, command: str = "covog train", dataloader=None
) -> dict:
    """Train; returns a summary (steps, final loss, seconds, steps/s after the first step, output folder,
    saved pipeline/adapter folder). See the module docstring; ``dataloader``: see :func:`prepare_run`.

    accelerate keeps process-wide state (mixed precision, gradient accumulation); it is reset when ``train``
    returns or fails, so one process can run several trainings (benchmarks, ablation studies, tests). The
    distributed process group, if any, stays up."""
    from accelerate.state import AcceleratorState, GradientState

    try:
        return _train(config, resume, command, dataloader)
    finally:
        AcceleratorState._reset_state()
        GradientState._reset_state()


def _train(config: TrainConfig, resume, command: str, dataloader) -> dict:
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    started = time.perf_counter()
    run = prepare_run(config, resume, dataloader)
    accelerator, pipe, cfg = run.accelerator, run.pipe, config.training
    output = Path(config.output.dir)
    accelerator.print(f"stage {config.stage}: trainable / frozen parameters\n{parameter_table(pipe)}")

    # ---- from here on the run writes
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output / "config.yaml", config.to_yaml())
        if accelerator.log_with:
            hparams = {key: str(value) for key, value in flatten(config.to_dict()).items()}
            accelerator.init_trackers("covog-train", config=hparams)
    _frozen_to(pipe, accelerator.device)
    model = CovOGTrainingModel(
        pipe.reference_unet,
        pipe.denoising_unet,
        pipe.pose_guider,
        pipe.pose_adaptor,
        pipe.audio_projection,
        bypass_motion_modules=config.stage == 1,
    )
    if config.model.gradient_checkpointing:
        pipe.reference_unet.enable_gradient_checkpointing()
        pipe.denoising_unet.enable_gradient_checkpointing()
    model.train()
    optimizer = torch.optim.AdamW(
        run.params,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=cfg.max_steps * accelerator.num_processes,
    )
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, run.loader, lr_scheduler)
    ema = None
    if cfg.use_ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(run.params, decay=cfg.ema_decay)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    scheduler = noise_scheduler_for(pipe)

    global_step = 0
    if run.resume_from is not None:
        accelerator.load_state(str(run.resume_from))
        global_step = int(run.resume_state["step"])
        accelerator.print(f"resumed from {run.resume_from} at step {global_step}")
    steps_per_epoch = math.ceil(len(loader) / cfg.gradient_accumulation_steps)
    first_epoch = global_step // steps_per_epoch
    skip_batches = (global_step % steps_per_epoch) * cfg.gradient_accumulation_steps
    state = {"config": config.to_dict(), "model_fingerprint": run.fingerprint}
    validation_inputs = None
    samples_log = _samples_log(config, accelerator)
    progress = tqdm(
        total=cfg.max_steps,
        initial=global_step,
        desc=f"stage {config.stage}",
        disable=not accelerator.is_main_process,
    )
    window_loss, window_samples, window_start = [], 0, time.perf_counter()
    last_loss = float("nan")
    step_times = []  # when each optimizer step of this session finished (throughput after the first)
    epoch = first_epoch
    while global_step < cfg.max_steps:
        loader.set_epoch(epoch)
        run.view.set_epoch(epoch)
        batches = loader
        if epoch == first_epoch and skip_batches:
            batches = accelerator.skip_first_batches(loader, skip_batches)
        for index, batch in enumerate(batches, start=skip_batches if epoch == first_epoch else 0):
            micro_step = epoch * len(loader) + index
            generator = step_generator(cfg.seed, micro_step, accelerator.process_index, accelerator.device)
            with accelerator.accumulate(model):
                with accelerator.autocast():  # the frozen encoders too
                    batch_on_device = _to_device(batch, accelerator.device)
                    inputs, target, weights = prepare_step(
                        pipe, scheduler, batch_on_device, config, generator, accelerator.device, run.use_audio
                    )
                    loss = weighted_mse(model(**inputs), target, weights)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients:
                    grad_norm = accelerator.clip_grad_norm_(run.params, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            window_loss.append(accelerator.reduce(loss.detach(), "mean").item())
            window_samples += len(batch["clip_id"]) * accelerator.num_processes
            if samples_log is not None:
                _log_samples(samples_log, global_step, batch)
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            step_times.append(time.perf_counter())
            progress.update(1)
            if ema is not None:
                ema.step(run.params)
            last_loss = sum(window_loss) / len(window_loss)
            progress.set_postfix(loss=f"{last_loss:.4f}")
            if global_step % config.output.logging_steps == 0 or global_step == cfg.max_steps:
                elapsed = time.perf_counter() - window_start
                logs = {
                    "loss": last_loss,
                    "lr": lr_scheduler.get_last_lr()[0],
                    "samples_per_s": window_samples / elapsed,
                }
                if grad_norm is not None:
                    logs["grad_norm"] = float(grad_norm)
                accelerator.log(logs, step=global_step)
                window_loss, window_samples, window_start = [], 0, time.perf_counter()
            if global_step % config.output.checkpointing_steps == 0 or global_step == cfg.max_steps:
                save_checkpoint(
                    accelerator, output, global_step, state, config.output.checkpoints_total_limit
                )
            steps = config.output.validation_steps
            if (
                run.validation_during_training
                and steps
                and global_step % steps == 0
                and global_step < cfg.max_steps
            ):
                validation_inputs = _validate(run, model, accelerator, global_step, validation_inputs, ema)
            if global_step >= cfg.max_steps:
                break
        epoch += 1
    progress.close()
    if samples_log is not None:
        samples_log.close()

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.release()
    if ema is not None:
        ema.copy_to(run.params)
    pipe = run.pipe = _gathered_pipeline(run, accelerator, model)
    result = {
        "command": command,
        "steps": global_step,
        "final_loss": last_loss,
        "seconds": time.perf_counter() - started,
        "steps_per_s": (len(step_times) - 1) / (step_times[-1] - step_times[0])
        if len(step_times) > 1
        else None,
        "num_clips": len(run.view),
        "num_processes": accelerator.num_processes,
        "output_dir": str(output),
    }
    if accelerator.is_main_process:
        pipe.denoising_unet.eval()
        if config.model.lora_rank is not None:
            result["saved"] = str(save_lora_adapter(pipe, output, config, result))
        else:
            result["saved"] = str(save_pipeline(pipe, output, config, result))
    _validate(run, None, accelerator, global_step, validation_inputs, None)  # every process: it synchronises
    accelerator.end_training()
    return result


def _gathered_pipeline(run, accelerator, model):
    """The pipeline holding the final weights on the main process. Under FSDP the trained modules hold shards:
    the full state dict is gathered (``accelerator.get_state_dict``) into a freshly loaded pipeline."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.FSDP:
        return run.pipe
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return run.pipe
    config = run.config
    pipe = load_pipeline(config.model.pretrained, config.model.vae, seed=config.training.seed)
    if config.model.lora_rank is not None:
        from .lora import add_lora_adapters

        add_lora_adapters(pipe, config.model.lora_rank, config.model.lora_alpha)
    holder = torch.nn.Module()
    for name in TRAINED_COMPONENTS:
        if getattr(pipe, name, None) is not None:
            holder.add_module(name, getattr(pipe, name))
    holder.load_state_dict(state)
    return pipe


def _validate(run, model, accelerator, step, inputs, ema):
    """Validation video on the main process (with EMA weights when enabled); returns the cached inputs."""
    from .validation import validation_inputs, write_validation_video

    if accelerator.is_main_process:
        inputs = inputs or validation_inputs(run.pipe, run.validation[1], run.config)
        if model is not None:
            model.eval()
        if ema is not None:
            ema.store(run.params)
            ema.copy_to(run.params)
        try:
            path = write_validation_video(
                run.pipe, inputs, run.config, step, run.config.output.dir, accelerator.trackers
            )
            accelerator.print(f"validation video: {path}")
        finally:
            if ema is not None:
                ema.restore(run.params)
            if model is not None:
                model.train()
    accelerator.wait_for_everyone()
    return inputs


def _to_device(batch: dict, device) -> dict:
    """Pixel tensors to the device (the rest is moved where it is used)."""
    moved = dict(batch)
    for key in ("pixel_values", "reference_pixel_values"):
        moved[key] = batch[key].to(device, non_blocking=True)
    return moved


def _samples_log(config, accelerator):
    if not config.output.log_samples:
        return None
    path = Path(config.output.dir) / "logs" / f"samples-process{accelerator.process_index}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a")


def _log_samples(stream, step: int, batch: dict) -> None:
    for i, clip_id in enumerate(batch["clip_id"]):
        record = {
            "step": step,
            "clip_id": clip_id,
            "frame_indices": batch["frame_indices"][i].tolist(),
            "reference_index": int(batch["reference_index"][i]),
        }
        stream.write(json.dumps(record) + "\n")
    stream.flush()

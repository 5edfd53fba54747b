"""Training options: gradient checkpointing gives the same gradients (including the ReferenceNet's, which
reach it through the reference bank); bf16 + EMA + tensorboard + validation videos run end to end."""

from __future__ import annotations

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from covog_diffusers.tiny import create_tiny_pipeline
from mit_dataset.torch_view import MITVideoDataset, collate_mit_batch
from training.components import set_trainable, stage_trainable
from training.loop import train
from training.losses import noise_scheduler_for, weighted_mse
from training.network import CovOGTrainingModel
from training.step import prepare_step, step_generator


def gradients(config, batch, checkpointing: bool) -> dict[str, torch.Tensor]:
    pipe = create_tiny_pipeline(seed=0, randomize_zero_init=True)
    set_trainable(pipe, stage_trainable(pipe, config.stage))
    if checkpointing:
        pipe.reference_unet.enable_gradient_checkpointing()
        pipe.denoising_unet.enable_gradient_checkpointing()
    model = CovOGTrainingModel(
        pipe.reference_unet, pipe.denoising_unet, pipe.pose_guider, pipe.pose_adaptor, pipe.audio_projection,
        bypass_motion_modules=True,
    ).train()  # fmt: skip
    inputs, target, weights = prepare_step(
        pipe, noise_scheduler_for(pipe), batch, config, step_generator(0, 0, 0, "cpu"), "cpu", use_audio=False
    )
    inputs["keep_reference"] = torch.ones_like(inputs["keep_reference"])
    weighted_mse(model(**inputs), target, weights).backward()
    model.release()
    return {
        f"{n}.{k}": p.grad
        for n in ("reference_unet", "denoising_unet")
        for k, p in getattr(pipe, n).named_parameters()
        if p.grad is not None
    }


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, synthetic_dataset_dir):
    import datasets

    config = tiny_config(1)
    split = datasets.load_dataset(str(synthetic_dataset_dir), split="train")
    view = MITVideoDataset(split, num_frames=1, height=32, width=64, mask_factors=(), window="first")
    batch = collate_mit_batch([view[0], view[1]])
    plain, checkpointed = gradients(config, batch, False), gradients(config, batch, True)
    assert plain.keys() == checkpointed.keys()
    assert any(name.startswith("reference_unet.down_blocks") for name in plain)
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_bf16_ema_tensorboard_and_validation_videos(tiny_config, tmp_path):
    config = tiny_config(
        2, "training.max_steps=2", "training.mixed_precision=bf16", "training.use_ema=true",
        "model.gradient_checkpointing=true", "output.report_to=tensorboard", "output.validation_steps=1",
        "output.logging_steps=1",
    )  # fmt: skip
    result = train(config)
    run = tmp_path / "run"
    assert result["steps"] == 2 and (run / "pipeline" / "model_index.json").is_file()
    assert {p.name for p in (run / "validation").iterdir()} == {"step-1.mp4", "step-2.mp4"}
    assert (run / "checkpoints" / "checkpoint-2" / "custom_checkpoint_0.pkl").is_file()  # the EMA state
    events = EventAccumulator(str(next((run / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    assert {"loss", "lr", "grad_norm", "samples_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2]
    assert "validation" in events.Tags()["images"]


def test_paper_configs_and_accelerate_files(tmp_path):
    """stage1/stage2.yaml hold the paper's recipe; the accelerate files parse as accelerate reads them."""
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    from training.config import load_config

    configs = Path(__file__).resolve().parents[2] / "training" / "configs"
    for stage in (1, 2):
        config = load_config(configs / f"stage{stage}.yaml", ["data.dataset=mit-talking"])
        assert (config.data.height, config.data.width) == (384, 640)
        assert config.num_frames == (1 if stage == 1 else 15)
        t = config.training
        assert (t.batch_size, t.max_steps, t.learning_rate, t.max_grad_norm) == (4, 30_000, 1e-5, 1.0)
        assert (t.noise_offset, t.snr_gamma, t.uncond_probability, t.mixed_precision) == (
            0.05,
            5.0,
            0.1,
            "bf16",
        )
    kinds = {}
    for name in ("ddp", "fsdp", "deepspeed-zero2"):
        cluster = ClusterConfig.from_yaml_file(configs / "accelerate" / f"{name}.yaml")
        kinds[name] = (
            str(cluster.distributed_type).split(".")[-1],
            cluster.num_processes,
            cluster.mixed_precision,
        )
    assert kinds == {
        "ddp": ("MULTI_GPU", 8, "bf16"),
        "fsdp": ("FSDP", 8, "bf16"),
        "deepspeed-zero2": ("DEEPSPEED", 8, "bf16"),
    }
    args = launch_command_parser().parse_args(
        ["--config_file", str(configs / "accelerate" / "fsdp.yaml"), "-m", "training.cli"]
    )
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    assert env["FSDP_USE_ORIG_PARAMS"] == "true" and env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    zero = ClusterConfig.from_yaml_file(configs / "accelerate" / "deepspeed-zero2.yaml").deepspeed_config
    assert zero["zero_stage"] == 2 and zero["gradient_clipping"] == 1.0


def test_a_given_vae_folder_replaces_the_pipelines_vae(tiny_config, tmp_path):
    import pytest
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    from covog_diffusers.tiny import tiny_configs

    torch.manual_seed(7)
    vae = AutoencoderKL(**tiny_configs()["vae"])
    vae.save_pretrained(tmp_path / "vae")
    result = train(tiny_config(1, f"model.vae={tmp_path / 'vae'}", "training.max_steps=1"))
    saved = load_file(next((tmp_path / "run" / "pipeline" / "vae").glob("*.safetensors")))
    assert all(torch.equal(saved[k], v) for k, v in vae.state_dict().items())
    assert result["steps"] == 1

    AutoencoderKL(**{**tiny_configs()["vae"], "latent_channels": 8}).save_pretrained(tmp_path / "vae8")
    with pytest.raises(
        ValueError, match=r"model.vae: .*vae8 has 8 latent channels and downsamples by 8; the pipeline"
    ):
        train(tiny_config(1, f"model.vae={tmp_path / 'vae8'}", name="refused"))
    assert not (tmp_path / "refused").exists()

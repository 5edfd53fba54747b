"""Stage 1 then stage 2 on tiny configs: the loss on a fixed batch goes down, frozen parameters stay
bit-identical, trained ones change, and the saved pipeline loads and generates."""

from __future__ import annotations

import datasets
import torch
from safetensors.torch import load_file

from covog_diffusers import CovOGPipeline
from covog_diffusers.models.audio import audio_context_frames
from covog_diffusers.tiny import create_tiny_pipeline, tiny_configs
from mit_dataset.torch_view import MITVideoDataset, collate_mit_batch
from training.components import stage_trainable
from training.loop import train
from training.step import fixed_batch_loss


def fixed_batch(dataset_dir, config):
    split = datasets.load_dataset(str(dataset_dir), split="train")
    view = MITVideoDataset(
        split, num_frames=config.num_frames, height=config.data.height, width=config.data.width,
        mask_factors=(), reference="first", window="center",
        audio_context_frames=audio_context_frames(tiny_configs()["audio_projection"]["window"]),
    )  # fmt: skip
    return collate_mit_batch([view[0], view[1]])


def state(pipe) -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: {k: v.detach().clone() for k, v in module.state_dict().items()}
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
    }


def changed_parameters(before: dict, after_pipe) -> dict[str, set[str]]:
    after = state(after_pipe)
    return {
        name: {k for k, v in params.items() if not torch.equal(v, after[name][k])}
        for name, params in before.items()
    }


def check_freezing(before: dict, trained_pipe, stage_selection: dict[str, list[str]]) -> None:
    changed = changed_parameters(before, trained_pipe)
    for name, keys in changed.items():
        trainable = set(stage_selection.get(name, []))
        assert keys <= trainable, f"{name}: frozen parameters changed: {sorted(keys - trainable)[:3]}"
        if trainable:
            assert len(keys) >= 0.5 * len(trainable), (
                f"{name}: only {len(keys)}/{len(trainable)} trained params moved"
            )


def test_stage1_then_stage2_learn_and_freeze(tiny_config, synthetic_dataset_dir, tmp_path):
    overrides = ("training.max_steps=12", "training.learning_rate=1e-3", "output.checkpointing_steps=100")
    config1 = tiny_config(1, *overrides, name="stage1")
    batch1 = fixed_batch(synthetic_dataset_dir, config1)
    initial = create_tiny_pipeline(seed=0)
    before1 = state(initial)
    loss_before = fixed_batch_loss(initial, config1, batch1)

    result = train(config1)
    stage1 = CovOGPipeline.from_pretrained(result["saved"])
    assert fixed_batch_loss(stage1, config1, batch1) < loss_before
    check_freezing(before1, stage1, stage_trainable(initial, 1))
    # The saved pipeline records its native size (latents) and regenerates a clip at it.
    assert list(stage1.denoising_unet.config.sample_size) == [32 // 8, 64 // 8]

    config2 = tiny_config(2, *overrides, f"model.pretrained={result['saved']}", name="stage2")
    batch2 = fixed_batch(synthetic_dataset_dir, config2)
    before2 = state(stage1)
    loss_before = fixed_batch_loss(stage1, config2, batch2)
    result = train(config2)
    stage2 = CovOGPipeline.from_pretrained(result["saved"])
    assert fixed_batch_loss(stage2, config2, batch2) < loss_before
    selection = stage_trainable(stage1, 2)
    assert selection["denoising_unet"] and all(
        ".motion_modules." in n or n.startswith("audio_drivers.") for n in selection["denoising_unet"]
    )
    check_freezing(before2, stage2, selection)
    # The run's folder: config, the last checkpoint, a validation video with audio, a model card.
    out = tmp_path / "stage2"
    assert (out / "config.yaml").is_file() and (out / "validation" / "step-12.mp4").is_file()
    card = (out / "pipeline" / "README.md").read_text()
    assert "stage 2, clips" in card and "max_steps: 12" in card and "12 optimizer steps" in card
    weights = load_file(out / "checkpoints" / "checkpoint-12" / "model.safetensors")
    assert any(k.startswith("denoising_unet.") for k in weights)

    # What `covog generate` and `mit-bench predict` do with the saved pipeline.
    from benchmark.predict import load_pipeline, predict_submission
    from benchmark.protocol import EvaluationSize
    from mit_talk.cli import run as run_cli

    test_clip = datasets.load_dataset(str(synthetic_dataset_dir), split="test")[0]["clip_id"]
    video = tmp_path / "generated.mp4"
    status = run_cli(
        "covog",
        ["generate", "--model", str(out / "pipeline"), "--dataset", str(synthetic_dataset_dir), "--clip", test_clip,
         "--out", str(video), "--num-frames", "4", "--steps", "1", "--height", "32", "--width", "64"],
    )  # fmt: skip
    assert status == 0 and video.stat().st_size > 0
    summary = predict_submission(
        load_pipeline(out / "pipeline"), str(synthetic_dataset_dir), tmp_path / "predictions", num_frames=4,
        num_inference_steps=1, evaluation_size=EvaluationSize(height=32, width=64), clip_ids=[test_clip],
        progress=False,
    )  # fmt: skip
    assert summary.written == [test_clip]

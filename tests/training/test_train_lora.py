"""LoRA: only the adapter weights train; the saved adapter loads into a fresh pipeline and changes its output."""

from __future__ import annotations

from pathlib import Path

import datasets
import torch
from safetensors.torch import load_file

from covog_diffusers.tiny import create_tiny_pipeline
from training.loop import train


def generate(pipe, inputs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return pipe(
        **inputs, num_inference_steps=1, guidance_scale=2.0, window_frames=4, overlap_frames=0,
        generator=generator, output_type="latent",
    ).frames  # fmt: skip


def test_lora_trains_only_adapters_and_loads_into_a_fresh_pipeline(
    tiny_config, synthetic_dataset_dir, tmp_path
):
    config = tiny_config(1, "training.max_steps=3", "training.learning_rate=1e-2", "model.lora_rank=4")
    result = train(config)
    lora_dir = Path(result["saved"])
    assert lora_dir == tmp_path / "run" / "lora" and (lora_dir / "README.md").is_file()
    adapter = load_file(lora_dir / "pytorch_lora_weights.safetensors")
    assert adapter and all("lora" in key for key in adapter)
    assert {key.split(".")[0] for key in adapter} == {"reference_unet", "denoising_unet"}
    assert not any("motion_modules" in key for key in adapter)  # spatial attention only
    assert any(key.endswith("lora_B.weight") and value.abs().sum() > 0 for key, value in adapter.items())

    # Only adapters trained: every base weight in the final checkpoint equals the initial model's.
    initial = create_tiny_pipeline(seed=0)
    checkpoint = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-3" / "model.safetensors")
    compared = 0
    for key, value in checkpoint.items():
        if "lora_" in key:
            continue
        component, _, name = key.partition(".")
        base = getattr(initial, component).state_dict()[name.replace(".base_layer", "")]
        assert torch.equal(value, base), key
        compared += 1
    assert compared > 100

    row = datasets.load_dataset(str(synthetic_dataset_dir), split="test")[0]
    fresh = create_tiny_pipeline(seed=0)
    inputs = fresh.inputs_from_mit_row(row, num_frames=4, height=32, width=64)
    before = generate(fresh, inputs)
    fresh.load_lora_weights(lora_dir)
    after = generate(fresh, inputs)
    assert not torch.allclose(before, after)
    # Loaded adapters are exactly the trained ones.
    assert torch.allclose(after, generate(_with_adapter(lora_dir), inputs))


def _with_adapter(lora_dir):
    pipe = create_tiny_pipeline(seed=0)
    pipe.load_lora_weights(lora_dir, adapter_name="identity")
    return pipe

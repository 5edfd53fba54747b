"""Bad input to ``covog train``: a clear error before the first step, naming the key/clip/input, and nothing
written."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from covog_diffusers.tiny import create_tiny_pipeline
from training.config import ConfigError, load_config
from training.loop import train

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def fails_cleanly(config, match: str, resume=None) -> None:
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        train(config, resume=resume)
    assert not Path(config.output.dir).exists(), "a failed start wrote its output folder"


def test_config_keys_and_types(tmp_path):
    path = CONFIGS / "tiny-stage1.yaml"
    with pytest.raises(ConfigError, match=r"tiny-stage1.yaml: training: unknown key\(s\) \['lr'\]"):
        load_config(path, ["training.lr=0.1"])
    with pytest.raises(ConfigError, match=r"training.max_steps: expected int, got 'many'"):
        load_config(path, ["training.max_steps=many"])
    with pytest.raises(ConfigError, match=r"stage 1 trains on single frames"):
        load_config(path, ["data.num_frames=4"])
    missing = tmp_path / "missing.yaml"
    missing.write_text("stage: 2\nmodel: {pretrained: tiny}\noutput: {dir: out}\n")
    with pytest.raises(ConfigError, match=r"missing.yaml: missing required key 'data.dataset'"):
        load_config(missing)
    with pytest.raises(ConfigError, match=r"override 'nonsense': expected KEY=VALUE"):
        load_config(path, ["nonsense"])
    assert (
        load_config(path, ["training.learning_rate=1e-3"]).training.learning_rate == 1e-3
    )  # YAML 1.1 "1e-3"


def test_dataset_without_the_needed_fields(tiny_config, tmp_path):
    folder = tmp_path / "not-mit"
    folder.mkdir()
    datasets.Dataset.from_dict({"clip_id": ["a", "b"], "num_frames": [30, 30]}).to_parquet(
        folder / "train.parquet"
    )
    fails_cleanly(tiny_config(1, f"data.dataset={folder}"), r"not-mit.*no column\(s\) \[.*'video'")


def test_clips_shorter_than_a_sample(tiny_config):
    fails_cleanly(
        tiny_config(2, "data.num_frames=31"), r"clip\(s\) \['.+'\] have 30 frames, fewer than the 31"
    )
    fails_cleanly(
        tiny_config(2, "data.num_frames=16", "data.stride=2", "data.drop_short=true"),
        r"no clip has the 31 frames a window needs \(num_frames=16, stride=2\)",
    )


def test_resolution_must_fit_the_vae_and_the_unet(tiny_config):
    fails_cleanly(tiny_config(1, "data.height=36"), r"data.height=36 is not divisible by the VAE factor 8")
    fails_cleanly(
        tiny_config(1, "data.width=72"), r"data.width=72 is not divisible by 16: the VAE factor 8 times"
    )


def test_lora_rank_on_a_model_without_attention(tiny_config, tmp_path):
    no_attention = {
        "down_block_types": ("DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D"),
        "mid_block_type": "UNetMidBlock2D",
    }
    folder = tmp_path / "plain"
    create_tiny_pipeline(reference_unet=no_attention).save_pretrained(folder)
    fails_cleanly(
        tiny_config(1, f"model.pretrained={folder}", "model.lora_rank=4"),
        r"--lora-rank 4: reference_unet has no spatial attention layers",
    )


def test_resume_into_another_config_or_model(tiny_config, tmp_path):
    model = tmp_path / "model"
    create_tiny_pipeline(seed=0).save_pretrained(model)
    base = (f"model.pretrained={model}", "training.max_steps=2", "output.validation_steps=0")
    train(tiny_config(1, *base))
    run = tmp_path / "run"
    assert (run / "checkpoints" / "checkpoint-2" / "training_state.json").is_file()
    snapshot = sorted(p.relative_to(run) for p in run.rglob("*"))

    def refused(config, match):
        with pytest.raises(ValueError, match=match):
            train(config, resume="latest")
        assert sorted(p.relative_to(run) for p in run.rglob("*")) == snapshot  # nothing written

    refused(
        tiny_config(1, *base, "training.learning_rate=0.5"),
        r"another config \(training.learning_rate: 0.0001 -> 0.5",
    )
    # More steps is a legitimate resume; another architecture behind the same path is not.
    create_tiny_pipeline(seed=0, denoising_unet={"use_iad": False}).save_pretrained(model)
    refused(tiny_config(1, *base[:1], "training.max_steps=4"), r"trained from another model")


def test_resume_needs_a_complete_checkpoint(tiny_config, tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    config = tiny_config(1)
    with pytest.raises(FileNotFoundError, match=r"--resume: .*half is not a complete checkpoint"):
        train(config, resume=str(half))

"""``covog train-vae``: the fit learns, the saved VAE carries its latent scaling, resume equals an uninterrupted
run, bad configs fail before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.vae import VAETrainingConfig, build_vae, decode_split_frames, reconstruction_psnr, train_vae

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"


@pytest.fixture
def vae_config(tmp_path, synthetic_dataset_dir, one_thread):
    def make(name: str = "vae", **overrides) -> VAETrainingConfig:
        values = {"dataset": str(synthetic_dataset_dir), "output_dir": str(tmp_path / name), **overrides}
        return VAETrainingConfig.from_yaml(CONFIGS / "tiny-vae.yaml", values)

    return make


@pytest.fixture(scope="module")
def test_frames(synthetic_dataset_dir):
    import datasets

    split = datasets.load_dataset(str(synthetic_dataset_dir), split="test")
    return decode_split_frames(split, 32, 64)[::4]


def test_fit_learns_and_saves_a_scaled_vae(vae_config, test_frames):
    from diffusers import AutoencoderKL

    from training.vae import encode_frames

    config = vae_config(max_steps=30, learning_rate=3e-3, checkpointing_steps=100, eval_frames=64)
    before = reconstruction_psnr(build_vae(config).eval(), test_frames)
    out = train_vae(config)
    vae = AutoencoderKL.from_pretrained(out).eval()
    assert not vae.config.mid_block_add_attention  # fully convolutional: crops cost what their pixels cost
    # Held-out clips (unseen identities) reconstruct better than with the initial weights.
    assert reconstruction_psnr(vae, test_frames) > before + 3.0
    # scaling_factor = 1 / std of the training frames' posterior means (SD's recipe).
    import datasets

    frames = decode_split_frames(datasets.load_dataset(config.dataset, split="train"), 32, 64)
    latents = encode_frames(
        vae, frames[torch.linspace(0, len(frames) - 1, config.eval_frames).round().long()]
    )
    assert vae.config.scaling_factor == pytest.approx(1 / latents.std().item(), rel=1e-4)
    assert (latents * vae.config.scaling_factor).std().item() == pytest.approx(1.0, rel=1e-4)
    assert "reconstruction_psnr_test" in (out / "README.md").read_text()


def test_resume_after_a_kill_equals_an_uninterrupted_run(vae_config, monkeypatch):
    from diffusers import AutoencoderKL

    import training.vae as vae_module

    reference = AutoencoderKL.from_pretrained(train_vae(vae_config("straight")))

    class Killed(Exception):
        pass

    original = vae_module.save_checkpoint

    def save_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise Killed

    config = vae_config("killed")
    monkeypatch.setattr(vae_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_vae(config)
    monkeypatch.setattr(vae_module, "save_checkpoint", original)
    resumed = AutoencoderKL.from_pretrained(train_vae(config, resume="latest"))
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

    # Resuming into another config is refused before a step is taken.
    with pytest.raises(ValueError, match="crop_size"):
        train_vae(vae_config("killed", crop_size=16), resume="latest")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"height": 30}, "height=30 must be a positive multiple of the VAE's downsampling factor 4"),
        ({"crop_size": 64}, "crop_size=64 is larger than the frame"),
        ({"block_out_channels": [8, 12, 16]}, "multiples of norm_num_groups"),
        ({"learning_rat": 1.0}, "unknown config key"),
    ],
)
def test_bad_config_fails_before_writing(vae_config, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train_vae(vae_config("bad", **overrides))
    assert not (tmp_path / "bad").exists()


def test_command_line(tmp_path, synthetic_dataset_dir, subprocess_env):
    import subprocess
    import sys

    out = tmp_path / "cli"

    def train_vae_command(max_steps: int) -> subprocess.CompletedProcess:
        args = ["--config", str(CONFIGS / "tiny-vae.yaml"), "--dataset", str(synthetic_dataset_dir)]
        args += ["--output-dir", str(out), "--max-steps", str(max_steps)]
        command = [sys.executable, "-m", "mit_talk.cli", "covog", "train-vae", *args]
        return subprocess.run(
            command, env=subprocess_env, check=False, cwd=REPO, capture_output=True, text=True, timeout=300
        )

    done = train_vae_command(2)
    assert done.returncode == 0, done.stderr
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    bad = train_vae_command(0)
    assert bad.returncode == 2 and "max_steps must be positive" in bad.stderr

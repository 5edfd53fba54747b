"""``--config`` finds the configs shipped in the package from any working directory (a non-editable install
has no ``training/configs`` beside the user), while a file that exists is always used as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mit_dataset.console import DEBUG_ENV
from training.config import ConfigError, load_config, packaged_config_names, resolve_config_path
from training.vae import VAETrainingConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory outside the clone."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["tiny-stage1", "tiny-stage1.yaml", "training/configs/tiny-stage1.yaml"])
def test_packaged_config_by_name_or_documented_path(elsewhere, name):
    config = load_config(name, ["data.dataset=d", "output.dir=o"])
    assert config.stage == 1 and config.data.dataset == "d"
    assert resolve_config_path(name).is_file() and not Path(name).exists()


def test_an_existing_file_wins_over_the_packaged_one(elsewhere):
    local = elsewhere / "training" / "configs" / "stage2.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("stage: 1\nmodel: {pretrained: tiny}\ndata: {dataset: mine}\noutput: {dir: o}\n")
    assert resolve_config_path("training/configs/stage2.yaml") == Path("training/configs/stage2.yaml")
    assert load_config("training/configs/stage2.yaml").data.dataset == "mine"
    assert load_config("stage2", ["data.dataset=d", "output.dir=o"]).stage == 2  # the packaged one


def test_unknown_config_lists_the_packaged_names(elsewhere):
    names = packaged_config_names()
    assert {"stage1", "stage2", "tiny-stage1", "tiny-stage2", "tiny-vae"} <= set(names)
    with pytest.raises(ConfigError, match=r"cannot read training config nope.*packaged: .*tiny-stage1"):
        load_config("nope")
    with pytest.raises(ConfigError, match=r"cannot read training config other/tiny-stage1.yaml"):
        load_config("other/tiny-stage1.yaml")  # another folder is a path, not a packaged name


def test_train_vae_reads_the_packaged_config(elsewhere):
    config = VAETrainingConfig.from_yaml(
        "training/configs/tiny-vae.yaml", {"dataset": "d", "output_dir": "o"}
    )
    assert config.dataset == "d" and config.max_steps > 0
    assert VAETrainingConfig.from_yaml("tiny-vae", {"dataset": "d", "output_dir": "o"}) == config


def test_covog_train_from_another_folder(tmp_path):
    """The README's command, run outside the clone: the config is found; the next error is the missing
    dataset override, not an unreadable config."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), DEBUG_ENV: "0"}
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", "--config", "training/configs/tiny-stage1.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot read training config" not in done.stderr
    assert "data.dataset" in done.stderr

"""The CovOG that ships in the package (``covog_diffusers.pretrained``, made by
``training/recipes/covog-tiny-synthetic/train.sh``): package data found through the package, its card says how it
was made, and it loads offline and beats the random tiny pipeline on synthetic test clips it never saw (seed 0;
it was trained on seed 1) in PSNR and SSIM, scored by the benchmark itself (``mit-bench predict`` + ``evaluate``).
That a non-editable install carries it is checked by ``tests/mit_talk/test_packaging.py`` (the wheel's files) and
``.ci/wheel_check`` (the demo from a wheel installed in a clean venv)."""

from __future__ import annotations

import configparser
import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest

import covog_diffusers
from covog_diffusers.pretrained import DEFAULT_MODEL, default_pipeline_path

REPO = Path(__file__).resolve().parents[2]

#: Run with HF_HUB_OFFLINE=1 in a fresh interpreter (argv: dataset folder, predictions folder); prints the scores.
SCORE_SCRIPT = r"""
import json, sys
import torch
from benchmark.predict import predict_submission
from benchmark.protocol import EvaluationSize
from benchmark.scoring import evaluate_submission
from covog_diffusers import CovOGPipeline
from covog_diffusers.pretrained import default_pipeline_path
from covog_diffusers.tiny import create_tiny_pipeline

torch.set_num_threads(1)
dataset, out = sys.argv[1], sys.argv[2]
pipelines = {
    "shipped": CovOGPipeline.from_pretrained(default_pipeline_path(), local_files_only=True),
    "random": create_tiny_pipeline(seed=0),
}
size = EvaluationSize(height=72, width=128)  # the clips' own size
#: Generation sizes of the clips' shape: the shipped model's own; the random one's VAE and UNets need a latent
#: grid divisible by 2, so 256x144 (latents 32x18, like the shipped model's 128x72 with its 4x VAE).
generate = {"shipped": {}, "random": {"height": 144, "width": 256}}
scores = {}
for name, pipe in pipelines.items():
    predict_submission(pipe, dataset, f"{out}/{name}", seed=0, progress=False, evaluation_size=size,
                       **generate[name])
    results, _ = evaluate_submission(dataset, f"{out}/{name}", metrics=["psnr", "ssim"], progress=False,
                                     evaluation_size=size)
    scores[name] = {metric: results.row()[metric] for metric in ("psnr", "ssim")}
print(json.dumps(scores))
"""


def test_the_shipped_pipeline_is_package_data_with_its_card():
    folder = default_pipeline_path()
    assert folder == Path(covog_diffusers.__file__).parent / "pretrained" / DEFAULT_MODEL
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    patterns = setup["options.package_data"]["covog_diffusers.pretrained"].split(", ")
    files = [path.relative_to(folder.parent).as_posix() for path in folder.rglob("*") if path.is_file()]
    assert [name for name in files if not any(fnmatch.fnmatch(name, p) for p in patterns)] == []
    weights = sum(path.stat().st_size for path in folder.rglob("*.safetensors"))
    assert 1_000_000 < weights <= 20_000_000, f"{weights / 1e6:.1f} MB of weights"
    card = (folder / "README.md").read_text()
    assert "model-index:" in card and "covog-tiny-synthetic" in card
    assert "--seed 1" in card and "## Recipe" in card and "| stage1 |" in card and "| stage2 |" in card


def test_a_package_without_its_data_files_says_so(monkeypatch):
    from covog_diffusers import pretrained

    monkeypatch.setattr(pretrained, "DEFAULT_MODEL", "absent")
    with pytest.raises(FileNotFoundError, match="installed without its data files"):
        pretrained.default_pipeline_path()


def test_the_shipped_model_loads_offline_and_beats_the_random_pipeline(tmp_path, subprocess_env):
    from mit_dataset.hub import write_synthetic_dataset

    # Seed 0: not the recipe's training data (seed 1); 4 test clips (easy/challenging x two/multi), 16 frames.
    dataset = write_synthetic_dataset(
        tmp_path / "mit-talking", num_clips=8, seed=0, width=128, height=72, seconds=0.64, progress=False
    )
    env = {
        **subprocess_env,
        "HF_HOME": str(tmp_path / "hf-home"),  # an empty cache: nothing can come from earlier downloads
    }
    done = subprocess.run(
        [sys.executable, "-c", SCORE_SCRIPT, str(dataset), str(tmp_path / "predictions")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    assert scores["shipped"]["psnr"] > scores["random"]["psnr"] + 3.0, scores
    assert scores["shipped"]["ssim"] > scores["random"]["ssim"] + 0.1, scores

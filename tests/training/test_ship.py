"""``python -m training.ship``: a trained run's pipeline, with generation defaults and a card saying how it was
made, written atomically (too large: refused, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covog_diffusers import CovOGPipeline
from covog_diffusers.tiny import create_tiny_pipeline
from training.ship import main, read_times, ship


@pytest.fixture
def run(tmp_path) -> dict[str, Path]:
    pipeline = tmp_path / "stage2" / "pipeline"
    pipe = create_tiny_pipeline(seed=0)
    pipe.set_generation_defaults(height=32, width=64)  # what covog train records: the training size
    pipe.save_pretrained(pipeline)
    (pipeline / "README.md").write_text(
        "---\nlibrary_name: diffusers\n---\n\n# CovOG, trained with MIT-Talk\n"
    )
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "README.md").write_text("# Recipe: x\n\n- data: 32 synthetic clips, seed 1\n")
    (recipe / "train.sh").write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\ncovog train --config stage1.yaml\n"
    )
    times = tmp_path / "times.txt"
    times.write_text("vae 600.0 100.5 2.5\nstage1 1200 300 0\nstage1 60 30 0\n")
    vae_card = tmp_path / "vae.md"
    results = {
        "steps": 3000,
        "reconstruction_psnr_train": 30.0,
        "reconstruction_psnr_test": 29.5,
        "scaling_factor": 0.5,
    }
    vae_card.write_text("# VAE\n\n```json\n" + json.dumps({"config": {}, "results": results}) + "\n```\n")
    return {
        "pipeline": pipeline,
        "recipe": recipe,
        "times": times,
        "vae_card": vae_card,
        "out": tmp_path / "ship",
    }


def test_ship_writes_the_pipeline_with_defaults_and_its_recipe(run):
    out = ship(run["pipeline"], run["recipe"], run["out"], 10, 2.0, run["times"], run["vae_card"])
    pipe = CovOGPipeline.from_pretrained(out)
    defaults = pipe.generation_defaults
    assert (defaults["height"], defaults["width"]) == (32, 64)  # kept from the run
    assert (defaults["num_inference_steps"], defaults["guidance_scale"]) == (10, 2.0)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: diffusers") and "# CovOG, trained with MIT-Talk" in card
    assert "## Recipe" in card and "- data: 32 synthetic clips, seed 1" in card
    assert "covog train --config stage1.yaml" in card and "#!/usr/bin/env bash" not in card
    assert "| stage1 | 21.0 | 5.5 |" in card and "Total 7.2 CPU minutes" in card
    assert "reconstruction PSNR 30.00 dB" in card and "64x32, 10 DDIM steps, guidance scale 2.0" in card


def test_too_large_weights_are_refused_and_nothing_is_written(run):
    with pytest.raises(ValueError, match="more than 0.001 MB"):
        ship(run["pipeline"], run["recipe"], run["out"], 10, 2.0, max_bytes=1000)
    assert not run["out"].exists() and not list(run["out"].parent.glob(".ship*"))


def test_times_file_errors_name_the_line(tmp_path):
    path = tmp_path / "times.txt"
    path.write_text("vae 1 2 3\nstage1 12.5\n")
    with pytest.raises(ValueError, match=r"times.txt:2: expected 'name wall_s user_s sys_s'"):
        read_times(path)


def test_command_line(run, capsys):
    args = ["--pipeline", str(run["pipeline"]), "--recipe", str(run["recipe"]), "--out", str(run["out"])]
    assert main([*args, "--steps", "4", "--guidance-scale", "1.5"]) == 0
    assert "shipped" in capsys.readouterr().out
    assert CovOGPipeline.from_pretrained(run["out"]).generation_defaults["num_inference_steps"] == 4

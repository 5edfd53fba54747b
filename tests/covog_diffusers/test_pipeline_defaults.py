"""Generation defaults travel with a saved pipeline and are what ``pipe()``, ``covog generate`` and ``mit-bench
predict`` use when not told otherwise; progress bars are on by default."""

from __future__ import annotations

import json
import re

import datasets
import numpy as np
import pytest
from pipeline_inputs import F, H, W, make_inputs

from covog_diffusers.pipelines import CovOGPipeline
from covog_diffusers.tiny import TINY_GENERATION_DEFAULTS, create_tiny_pipeline
from mit_dataset.video_io import probe_video
from mit_talk.cli import covog as main


def defaults_inputs(**kwargs) -> dict:
    inputs = make_inputs(**kwargs)
    inputs.pop("num_inference_steps")
    return inputs


def test_tiny_pipeline_generates_at_its_defaults():
    pipe = create_tiny_pipeline()
    assert pipe.generation_defaults == {
        **TINY_GENERATION_DEFAULTS,
        "window_frames": 16,
        "overlap_frames": 6,
    }
    assert pipe.denoising_unet.config.sample_size == (H // 8, W // 8)
    calls = []
    handle = pipe.denoising_unet.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        # A reference image of another size: the output has the pipeline's size, not the image's.
        inputs = {**defaults_inputs(), "reference_image": np.zeros((72, 128, 3), np.uint8)}
        frames = pipe(**inputs, keypoint_size=(H, W), output_type="np").frames
    finally:
        handle.remove()
    assert frames.shape == (1, F, H, W, 3)
    assert calls == [2] * TINY_GENERATION_DEFAULTS["num_inference_steps"]  # guidance 2: CFG batch of 2


def test_defaults_round_trip_through_save_pretrained(tmp_path):
    pipe = create_tiny_pipeline()
    pipe.set_generation_defaults(
        height=48, width=80, num_inference_steps=3, guidance_scale=1.5, window_frames=12
    )
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert (index["default_num_inference_steps"], index["default_guidance_scale"]) == (3, 1.5)
    assert (index["default_window_frames"], index["default_overlap_frames"]) == (12, 6)
    for unet in ("denoising_unet", "reference_unet"):
        assert json.loads((tmp_path / unet / "config.json").read_text())["sample_size"] == [6, 10]
    loaded = CovOGPipeline.from_pretrained(tmp_path)
    expected = {
        "height": 48,
        "width": 80,
        "num_inference_steps": 3,
        "guidance_scale": 1.5,
        "window_frames": 12,
        "overlap_frames": 6,
    }
    assert loaded.generation_defaults == expected
    loaded.set_progress_bar_config(disable=True)
    assert loaded(**defaults_inputs(), output_type="latent").frames.shape == (1, 4, F, 6, 10)
    # A load-time override, as for any pipeline config entry.
    assert (
        CovOGPipeline.from_pretrained(tmp_path, default_num_inference_steps=7).generation_defaults[
            "num_inference_steps"
        ]
        == 7
    )
    # A folder saved before the defaults existed: the paper's settings, and the reference image's size.
    for key in [k for k in index if k.startswith("default_")]:
        del index[key]
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    config = json.loads((tmp_path / "denoising_unet" / "config.json").read_text())
    (tmp_path / "denoising_unet" / "config.json").write_text(json.dumps({**config, "sample_size": None}))
    old = CovOGPipeline.from_pretrained(tmp_path)
    assert old.generation_defaults == {
        "height": None,
        "width": None,
        "num_inference_steps": 25,
        "guidance_scale": 3.5,
        "window_frames": 16,
        "overlap_frames": 6,
    }
    old.set_progress_bar_config(disable=True)
    latents = old(**defaults_inputs(), num_inference_steps=1, output_type="latent").frames
    assert latents.shape == (1, 4, F, H // 8, W // 8)  # make_inputs' reference image is H x W


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"height": 32}, "both height and width or neither"),
        ({"height": 30, "width": 64}, "multiples of the VAE factor 8, got 30x64"),
        ({"num_inference_steps": 0}, "num_inference_steps must be a positive integer"),
        ({"guidance_scale": -1.0}, "guidance_scale must be >= 0"),
        ({"window_frames": 40}, "exceeds the motion module's maximum 32"),
        ({"window_frames": 8, "overlap_frames": 8}, "overlap_frames must lie in"),
    ],
)
def test_bad_defaults_are_rejected_and_nothing_changes(settings, message):
    pipe = create_tiny_pipeline()
    before = (pipe.generation_defaults, pipe.reference_unet.config.sample_size)
    with pytest.raises(ValueError, match=message):
        pipe.set_generation_defaults(**settings)
    assert (pipe.generation_defaults, pipe.reference_unet.config.sample_size) == before


def denoising_bar_totals(err: str) -> set[int]:
    """Totals of the finished tqdm bars without a description (the pipeline's denoising bar; loading bars have
    one)."""
    return {int(total) for done, total in re.findall(r"(?:^|[\r\n])100%\|[^|]*\| (\d+)/(\d+) \[", err)}


def test_progress_bar_is_on_by_default(capfd):
    pipe = create_tiny_pipeline()
    pipe(**defaults_inputs(frames=20), window_frames=8, overlap_frames=2, output_type="latent")
    # 20 frames in windows of 8 sharing 2: (0, 8), (6, 14), (12, 20) -> 3 windows x 4 steps.
    assert denoising_bar_totals(capfd.readouterr().err) == {12}
    pipe.set_progress_bar_config(disable=True)
    pipe(**defaults_inputs(), output_type="latent")
    assert not denoising_bar_totals(capfd.readouterr().err)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("covog") / "tiny-covog"
    assert main(["create-tiny", str(out)]) == 0
    return out


def test_covog_generate_at_the_pipeline_defaults(tiny_model, synthetic_dataset_dir, tmp_path, capfd):
    """No size, steps, guidance or window options: the whole clip at the pipeline's defaults, with a progress bar
    whose total is windows x steps."""
    row = datasets.load_dataset(str(synthetic_dataset_dir), split="test")[0]
    out = tmp_path / "clip.mp4"
    argv = ["generate", "--model", str(tiny_model), "--dataset", str(synthetic_dataset_dir)]
    assert main([*argv, "--clip", row["clip_id"], "--out", str(out)]) == 0
    info = probe_video(out)
    assert (info.num_frames, info.height, info.width) == (row["num_frames"], H, W)
    captured = capfd.readouterr()
    steps = TINY_GENERATION_DEFAULTS["num_inference_steps"]
    assert f"at {H}x{W}, {steps} steps, guidance scale 2" in captured.out
    windows = len(range(0, row["num_frames"] - 6, 10))  # windows of 16 frames, 6 shared
    assert denoising_bar_totals(captured.err) == {windows * steps}
    assert "should be kept in float32" not in captured.err  # loaded in its dtype, not cast with to()
    # The options mit-bench predict spells the same way.
    assert (
        main(
            [
                *argv,
                "--clip",
                row["clip_id"],
                "--out",
                str(out),
                "--num-frames",
                "2",
                "--guidance-scale",
                "1",
                "--steps",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    captured = capfd.readouterr()
    assert "1 steps, guidance scale 1" in captured.out and not denoising_bar_totals(captured.err)


def test_generate_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for option in (
        "--steps",
        "--guidance-scale",
        "--height",
        "--width",
        "--window-frames",
        "--overlap-frames",
    ):
        assert option in help_text
    assert help_text.count("(default: the pipeline's") >= 5
    for shown in ("first clip frame to generate (default: 0)", "noise seed (default: 0)"):
        assert shown in help_text


def test_mit_bench_predict_uses_the_pipeline_defaults(tmp_path, synthetic_dataset_dir):
    from benchmark.predict import MANIFEST, predict_submission
    from benchmark.protocol import EvaluationSize

    pipe = create_tiny_pipeline()
    pipe.set_generation_defaults(num_inference_steps=1, guidance_scale=1.0)
    seen = []
    handle = pipe.denoising_unet.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        test = datasets.load_dataset(str(synthetic_dataset_dir), split="test")
        predict_submission(
            pipe,
            str(synthetic_dataset_dir),
            tmp_path,
            clip_ids=[test[0]["clip_id"]],
            num_frames=4,
            progress=False,
            evaluation_size=EvaluationSize(height=32, width=64),  # the tiny model's own shape: it runs at it
        )
    finally:
        handle.remove()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert (manifest["num_inference_steps"], manifest["guidance_scale"]) == (1, 1.0)
    assert seen == [1]  # one step, no CFG batch


@pytest.mark.parametrize("side", ["height", "width"])
def test_one_side_given_replaces_only_that_side(tiny_model, synthetic_dataset_dir, tmp_path, capfd, side):
    """``covog generate --height 48`` generates at 48 x the pipeline's width (it used to drop the 48 and fall
    back to the clip's 384x640, a hundred times the work at the tiny pipeline's 32x64); a size the VAE cannot
    divide is refused by the pipeline, not silently replaced."""
    row = datasets.load_dataset(str(synthetic_dataset_dir), split="test")[0]
    pipe = CovOGPipeline.from_pretrained(tiny_model)
    assert {k: pipe.inputs_from_mit_row(row, **{side: 48})[k] for k in ("height", "width")} == {
        "height": 48 if side == "height" else H,
        "width": 48 if side == "width" else W,
    }
    out = tmp_path / "clip.mp4"
    argv = ["generate", "--model", str(tiny_model), "--dataset", str(synthetic_dataset_dir), "--clip"]
    argv += [row["clip_id"], "--out", str(out), "--num-frames", "2", "--steps", "1", "--no-progress"]
    assert main([*argv, f"--{side}", "48"]) == 0
    info = probe_video(out)
    assert (info.height, info.width) == ((48, W) if side == "height" else (H, 48))
    capfd.readouterr()
    assert main([*argv, f"--{side}", "33"]) == 2
    assert "33" in capfd.readouterr().err

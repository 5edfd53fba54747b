import json
from typing import ClassVar

import numpy as np
import pytest
from bench_data import make_test_split

from benchmark.predict import MANIFEST, ablations, generation_size, predict_submission
from benchmark.protocol import EvaluationSize
from benchmark.submission import clip_specs, validate_submission
from mit_dataset.video_io import read_video_frames, write_video

CLIPS = (("p_two", "two_human", "easy"), ("p_multi", "multi_human", "challenging"))
#: Generated at 32x32, which is also the evaluation size here (the clips are 48x32: the ground truth is cropped).
EVAL = EvaluationSize(height=32, width=32)
FAST = {"num_inference_steps": 1, "guidance_scale": 1.0, "progress": False, "evaluation_size": EVAL}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_test_split(tmp_path_factory.mktemp("gt"), clips=CLIPS, num_frames=8, width=48, height=32)


def test_predict_writes_a_valid_submission_and_resumes(split, pipeline, tmp_path):
    out = tmp_path / "pred"
    first = predict_submission(pipeline, split, out, **FAST)
    assert sorted(first.written) == ["p_multi", "p_two"] and not first.skipped
    report = validate_submission(out, clip_specs(split), EVAL)
    assert report.ok, report.format()  # 8 frames at the evaluation size 32x32, 25 fps
    assert read_video_frames(out / "p_two.mp4").shape == (8, 32, 32, 3)
    assert json.loads((out / MANIFEST).read_text())["num_inference_steps"] == 1
    original = read_video_frames(out / "p_two.mp4")
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}

    second = predict_submission(pipeline, split, out, **FAST)
    assert sorted(second.skipped) == ["p_multi", "p_two"] and not second.written
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == stamps

    (out / "p_two.mp4").unlink()  # a clip that never finished
    (out / "p_multi.mp4").write_bytes(b"truncated")  # a broken file is regenerated, not trusted
    third = predict_submission(pipeline, split, out, **FAST)
    assert sorted(third.written) == ["p_multi", "p_two"] and third.redone == ["p_multi"]
    # Per-clip seeds: a clip regenerated on resume is the clip the first run made.
    np.testing.assert_array_equal(read_video_frames(out / "p_two.mp4"), original)
    assert not list(out.glob(".*"))  # no temporary files left behind
    # The right frames at another frame rate: validate refuses the file, so a resumed run does not keep it.
    write_video(out / "p_two.mp4", original, fps=30)
    assert [p.kind for p in validate_submission(out, clip_specs(split), EVAL).problems] == ["fps"]
    fourth = predict_submission(pipeline, split, out, **FAST)
    assert fourth.redone == ["p_two"] and validate_submission(out, clip_specs(split), EVAL).ok

    with pytest.raises(ValueError, match=r"other settings \(num_inference_steps: 1 -> 2\)"):
        predict_submission(pipeline, split, out, **{**FAST, "num_inference_steps": 2})


def test_ablations_switch_the_loaded_pipeline_and_restore_it(pipeline):
    drivers = pipeline.denoising_unet.audio_drivers
    assert drivers is not None and not pipeline.pose_guider.config.joint
    with ablations(pipeline, disable_iad=True, joint_pose=True):
        assert pipeline.denoising_unet.audio_drivers is None
        assert pipeline.pose_guider.config.joint and pipeline.pose_adaptor.config.joint
    assert pipeline.denoising_unet.audio_drivers is drivers
    assert not pipeline.pose_guider.config.joint and not pipeline.pose_adaptor.config.joint


def test_ablation_output_differs_from_the_full_model(split, pipeline, tmp_path):
    full = predict_submission(pipeline, split, tmp_path / "full", clip_ids=["p_two"], **FAST)
    no_iad = predict_submission(
        pipeline, split, tmp_path / "no_iad", clip_ids=["p_two"], disable_iad=True, **FAST
    )
    assert full.written == no_iad.written == ["p_two"]
    a = read_video_frames(tmp_path / "full" / "p_two.mp4")
    b = read_video_frames(tmp_path / "no_iad" / "p_two.mp4")
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert json.loads((tmp_path / "no_iad" / MANIFEST).read_text())["disable_iad"] is True


def test_unsupported_ablation_and_unknown_clip_are_clear_errors(split, pipeline, tmp_path):
    class Plain:
        pass

    with pytest.raises(ValueError, match="IAD switched off"), ablations(Plain(), disable_iad=True):
        pass
    with pytest.raises(ValueError, match="joint pose guider"), ablations(Plain(), joint_pose=True):
        pass
    with pytest.raises(ValueError, match="not in the test split"):
        predict_submission(pipeline, split, tmp_path / "x", clip_ids=["nope"], **FAST)


def test_cli_predict_from_a_saved_pipeline(split, pipeline, tmp_path, capsys):
    from mit_talk.cli import mit_bench as main

    pipeline.save_pretrained(tmp_path / "model")
    split.save_to_disk(str(tmp_path / "dataset"))
    args = ["predict", "--model", str(tmp_path / "model"), "--dataset", str(tmp_path / "dataset"), "--out",
            str(tmp_path / "pred"), "--steps", "1", "--guidance-scale", "1", "--eval-size", "32x32",
            "--clips", "p_two", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "1 clip(s) generated" in capsys.readouterr().out
    assert main(args) == 0
    assert "1 already finished" in capsys.readouterr().out
    validate = ["validate", "--dataset", str(tmp_path / "dataset"), "--predictions", str(tmp_path / "pred"),
                "--eval-size", "32x32"]  # fmt: skip
    assert main(validate) == 1
    assert "missing (1)" in capsys.readouterr().out  # p_multi was not asked for
    assert main([*args[:2], str(tmp_path / "nowhere"), *args[3:]]) == 2
    assert "no model_index.json" in capsys.readouterr().err
    # evaluate names the model from predict_config.json (the folder predict was given)
    evaluate = ["evaluate", "--dataset", str(tmp_path / "dataset"), "--predictions", str(tmp_path / "pred"),
                "--out", str(tmp_path / "results.json"), "--metrics", "psnr", "--eval-size", "32x32",
                "--no-progress"]  # fmt: skip
    assert main(evaluate) == 1  # incomplete: one of two clips
    assert "**model** on MIT test" in capsys.readouterr().out
    assert main([*evaluate, "--model-name", "mine"]) == 1
    assert "**mine** on MIT test" in capsys.readouterr().out


def test_model_name_from_manifest(tmp_path):
    from benchmark.predict import MANIFEST, model_name_from_manifest

    assert model_name_from_manifest(tmp_path) == ""
    (tmp_path / MANIFEST).write_text(json.dumps({"model": "/models/tiny-covog/", "disable_iad": True}))
    assert model_name_from_manifest(tmp_path) == "tiny-covog (IAD off)"
    (tmp_path / MANIFEST).write_text(json.dumps({"model": "", "seed": 0}))
    assert model_name_from_manifest(tmp_path) == ""  # a pipeline built in memory
    (tmp_path / MANIFEST).write_text("[not json")
    assert model_name_from_manifest(tmp_path) == ""


def test_generation_size_has_the_evaluation_size_shape():
    class Native:
        generation_defaults: ClassVar[dict] = {"height": 32, "width": 64}

    paper = EvaluationSize(height=384, width=640)
    assert generation_size(Native(), None, None, EvaluationSize(height=64, width=128)) == (32, 64)  # its own
    assert generation_size(Native(), None, None, paper) == (384, 640)  # another shape: the evaluation size
    assert generation_size(object(), None, None, paper) == (384, 640)
    assert generation_size(Native(), 192, 320, paper) == (192, 320)
    with pytest.raises(
        ValueError, match="generation size 64x32 has another aspect ratio than the evaluation size"
    ):
        generation_size(Native(), 32, 64, paper)
    with pytest.raises(ValueError, match="both the generation height and width"):
        generation_size(Native(), 32, None, paper)

"""The evaluation size: predictions at it or at the clip's size, ground truth brought there by the cover
transform (not stretched), recorded in results and model cards, one option on every command."""

import json

import numpy as np
import pytest
from bench_data import CLIP_SIZE, ground_truth_submission, make_test_split
from huggingface_hub import ModelCard

from benchmark.integrity import check_results_dict
from benchmark.model_card import write_model_card
from benchmark.protocol import PAPER_EVALUATION_SIZE, EvaluationSize
from benchmark.scoring import BenchmarkResults, evaluate_submission
from benchmark.submission import clip_specs, validate_submission
from benchmark.video_loading import transform_frames
from mit_dataset.frame_decoder import iter_frames
from mit_dataset.geometry import FrameTransform
from mit_dataset.video_io import read_video_frames
from mit_talk.cli import mit_bench as main

#: Another aspect ratio than the 32x24 clips (3:2 against 4:3): the cover transform crops rows.
WIDE = EvaluationSize(height=16, width=24)
CLIPS = (("a", "two_human", "easy"), ("b", "multi_human", "challenging"))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_test_split(tmp_path_factory.mktemp("gt"), clips=CLIPS, num_frames=12)


@pytest.fixture(scope="module")
def gt_at_wide(split, tmp_path_factory):
    """Each clip's ground truth brought to WIDE by FFmpeg through the cover transform, as .npy predictions."""
    out = tmp_path_factory.mktemp("wide")
    for path in ground_truth_submission(split, tmp_path_factory.mktemp("gt_mp4")).iterdir():
        transform = WIDE.transform(24, 32)
        np.save(out / f"{path.stem}.npy", np.stack(list(iter_frames(path.read_bytes(), transform))))
    return out


def test_parse_and_print_width_x_height():
    assert EvaluationSize.parse("640x384") == PAPER_EVALUATION_SIZE == EvaluationSize(height=384, width=640)
    assert str(PAPER_EVALUATION_SIZE) == "640x384" and PAPER_EVALUATION_SIZE.size == (384, 640)
    assert EvaluationSize.from_dict(PAPER_EVALUATION_SIZE.to_dict()) == PAPER_EVALUATION_SIZE
    for bad in ("640", "640x", "384*640", "-640x384", "640x8"):
        with pytest.raises(ValueError, match="evaluation size"):
            EvaluationSize.parse(bad)
    transform = PAPER_EVALUATION_SIZE.transform(1080, 1920)  # MIT clips: scale to 683x384, crop 21 columns
    assert (transform.resized_width, transform.resized_height, transform.offset_x) == (683, 384, 21)


def test_predictions_at_the_evaluation_size_or_the_clip_size_are_valid(split, gt_at_wide, tmp_path):
    specs = clip_specs(split)
    assert validate_submission(gt_at_wide, specs, WIDE).ok  # at the evaluation size
    assert validate_submission(ground_truth_submission(split, tmp_path / "gt"), specs, WIDE).ok  # clip size
    np.save(tmp_path / "a.npy", np.zeros((12, 20, 20, 3), np.uint8))
    (tmp_path / "gt" / "a.mp4").unlink()
    np.save(tmp_path / "gt" / "a.npy", np.zeros((12, 20, 20, 3), np.uint8))
    report = validate_submission(tmp_path / "gt", specs, WIDE)
    assert [p.kind for p in report.problems] == ["resolution"]
    assert "a.npy: 20x20, expected 24x16 (the evaluation size) or 32x24 (the clip's size)" in report.format()
    paper = validate_submission(gt_at_wide, specs)  # 24x16 is not the default 640x384
    assert {p.kind for p in paper.problems} == {"resolution"} and "expected 640x384" in paper.format()


def test_ground_truth_is_brought_to_the_evaluation_size_by_the_cover_transform(split, gt_at_wide, tmp_path):
    """Predictions equal to the cover-transformed ground truth score perfectly; stretched ones do not."""
    results, report = evaluate_submission(
        split, gt_at_wide, metrics=("ssim", "psnr"), progress=False, evaluation_size=WIDE
    )
    assert report.ok and results.evaluation_size == WIDE
    assert all(c["ssim"] == pytest.approx(1.0, abs=1e-9) and c["psnr"] == 100.0 for c in results.per_clip)

    stretched = tmp_path / "stretched"
    stretched.mkdir()
    for path in ground_truth_submission(split, tmp_path / "gt").iterdir():
        frames = read_video_frames(path)  # 32x24 -> 24x16 without cropping: the aspect ratio changes
        stretch = FrameTransform(24, 32, 16, 24, 0, 0, 16, 24)
        np.save(stretched / f"{path.stem}.npy", transform_frames(frames, stretch))
    worse, _ = evaluate_submission(split, stretched, metrics=("ssim",), progress=False, evaluation_size=WIDE)
    assert worse.row()["ssim"] < 0.99


def test_a_clip_size_prediction_is_transformed_like_the_ground_truth(split, tmp_path):
    """The ground truth submitted at its own size scores perfectly at any evaluation size (same FFmpeg path)."""
    perfect = ground_truth_submission(split, tmp_path / "gt")
    for size in (WIDE, EvaluationSize(height=48, width=48)):  # a crop, an upscale
        results, _ = evaluate_submission(split, perfect, metrics=("ssim", "psnr"), progress=False,
                                         evaluation_size=size)  # fmt: skip
        assert results.complete and results.row()["psnr"] == 100.0, size


def test_results_and_model_card_record_the_evaluation_size(split, gt_at_wide, tmp_path):
    results, _ = evaluate_submission(
        split, gt_at_wide, metrics=("ssim",), progress=False, evaluation_size=WIDE
    )
    data = json.loads(results.write_json(tmp_path / "r.json").read_text())
    assert data["format"] == "mit-bench-results/2" and data["evaluation_size"] == {"width": 24, "height": 16}
    assert BenchmarkResults.load(tmp_path / "r.json").evaluation_size == WIDE
    assert "on MIT test at 24x16" in results.markdown()
    card = ModelCard.load(write_model_card(results, tmp_path / "README.md"))
    assert "Evaluation size: 24x16" in card.text
    assert {e.metric_args["evaluation_size"] for e in card.data.eval_results} == {"24x16"}

    for broken, message in (
        ({k: v for k, v in data.items() if k != "evaluation_size"}, "field 'evaluation_size'"),
        ({**data, "evaluation_size": {"width": 24}}, "field 'evaluation_size'"),
        ({**data, "format": "mit-bench-results/1"}, "scored before evaluation sizes were recorded"),
    ):
        with pytest.raises(ValueError, match=message):
            check_results_dict(broken)


def test_eval_size_is_one_option_on_every_command(split, tmp_path, capsys):
    split.save_to_disk(str(tmp_path / "dataset"))
    predictions = ground_truth_submission(split, tmp_path / "gt")
    base = ["--dataset", str(tmp_path / "dataset"), "--predictions", str(predictions)]
    assert main(["validate", *base, "--eval-size", "24x16"]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", *base, "--eval-size", "24by16"])
    assert exit_info.value.code == 2
    assert "--eval-size: evaluation size '24by16': expected WIDTHxHEIGHT" in capsys.readouterr().err
    out = tmp_path / "r.json"
    assert main(["evaluate", *base, "--out", str(out), "--metrics", "ssim", "--eval-size", "24x16",
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads(out.read_text())["evaluation_size"] == {"width": 24, "height": 16}
    assert main(["evaluate", *base, "--out", str(out), "--metrics", "psnr", "--eval-size", str(CLIP_SIZE),
                 "--no-progress"]) == 0  # fmt: skip
    assert json.loads(out.read_text())["evaluation_size"] == {"width": 32, "height": 24}


def test_results_at_different_evaluation_sizes_are_not_ranked_together(split, gt_at_wide, tmp_path):
    from benchmark.leaderboard import build_leaderboard

    folder = tmp_path / "submissions"
    for name, size, predictions in (("a", WIDE, gt_at_wide), ("b", WIDE, gt_at_wide), ("c", CLIP_SIZE, None)):
        predictions = predictions or ground_truth_submission(split, tmp_path / "gt")
        results, _ = evaluate_submission(
            split, predictions, metrics=("ssim",), progress=False, evaluation_size=size, model_name=name
        )
        results.write_json(folder / f"{name}.json")
    board = build_leaderboard(folder)
    assert sorted(e.name for e in board.entries) == ["a", "b"]
    assert [(path.name, reason) for path, reason in board.rejected] == [
        ("c.json", "scored at evaluation size 32x24, the other entries at 24x16")
    ]

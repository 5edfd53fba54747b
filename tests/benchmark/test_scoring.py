import json

import numpy as np
import pytest
from bench_data import CLIP_SIZE, DEFAULT_CLIPS, ground_truth_submission, make_test_split, write_tiny_detector
from huggingface_hub import ModelCard

from benchmark.model_card import PartialResultsError, write_model_card
from benchmark.scoring import PSNR_MAX_DB, TABLE_ROWS, BenchmarkResults, evaluate_submission
from mit_dataset.video_io import read_video_frames, write_video
from mit_talk.cli import mit_bench as main


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_test_split(tmp_path_factory.mktemp("gt"), num_frames=16)


@pytest.fixture(scope="module")
def perfect(split, tmp_path_factory):
    return ground_truth_submission(split, tmp_path_factory.mktemp("perfect"))


@pytest.fixture(scope="module")
def noisy(split, perfect, tmp_path_factory):
    """Every ground-truth clip with Gaussian noise added (re-encoded)."""
    out = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(0)
    for clip_id, *_ in DEFAULT_CLIPS:
        frames = read_video_frames(perfect / f"{clip_id}.mp4").astype(np.float32)
        frames = np.clip(frames + rng.normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
        write_video(out / f"{clip_id}.mp4", frames, fps=25)
    return out


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return write_tiny_detector(tmp_path_factory.mktemp("i3d") / "tiny_i3d.pt")


def test_ground_truth_against_itself(split, perfect, monkeypatch):
    monkeypatch.delenv("MIT_BENCH_I3D", raising=False)
    results, report = evaluate_submission(split, perfect, progress=False, evaluation_size=CLIP_SIZE)
    assert report.ok and results.complete and results.num_scored == len(DEFAULT_CLIPS)
    for clip in results.per_clip:
        assert clip["ssim"] == pytest.approx(1.0, abs=1e-9)
        assert clip["psnr"] == PSNR_MAX_DB  # identical frames: inf clamped, never inf/NaN in the JSON
        assert "speaker_sync" in clip
    assert results.metrics == ["ssim", "psnr", "speaker_sync"]
    assert "no I3D file given" in results.skipped["fvd"]
    assert "FVD skipped: no I3D file given" in results.markdown()


def test_table_has_every_cell_with_its_clip_count(split, noisy):
    results, _ = evaluate_submission(
        split, noisy, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    assert [(r["difficulty"], r["subset"]) for r in results.table] == list(TABLE_ROWS)
    counts = {(r["difficulty"], r["subset"]): r["n"] for r in results.table}
    assert counts[("easy", "two_human")] == 1 and counts[("easy", "all")] == 2 and counts[("all", "all")] == 4
    table = results.markdown()
    for difficulty, subset in TABLE_ROWS:
        assert f"| {difficulty} | {subset.replace('_', '-')} |" in table
    per_clip = {r["clip_id"]: r for r in results.per_clip}
    easy = [per_clip[c]["ssim"] for c, _, d in DEFAULT_CLIPS if d == "easy"]
    assert results.row("easy", "all")["ssim"] == pytest.approx(np.mean(easy))


def test_values_match_scikit_image(split, noisy):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    results, _ = evaluate_submission(
        split, noisy, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    clip = results.per_clip[0]
    gt = read_video_frames(_gt_bytes(split, clip["clip_id"]))
    pred = read_video_frames(noisy / f"{clip['clip_id']}.mp4")
    psnr = np.mean([peak_signal_noise_ratio(g, p, data_range=255) for g, p in zip(gt, pred)])
    ssim = np.mean(
        [
            structural_similarity(
                g,
                p,
                channel_axis=-1,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=255,
            )
            for g, p in zip(gt, pred)
        ]
    )
    assert clip["psnr"] == pytest.approx(psnr, abs=1e-4) and clip["psnr"] < 40
    assert clip["ssim"] == pytest.approx(ssim, abs=1e-4) and clip["ssim"] < 0.99


def _gt_bytes(split, clip_id):
    import datasets

    raw = split.cast_column("video", datasets.Video(decode=False))
    return raw[split["clip_id"].index(clip_id)]["video"]["bytes"]


def test_fvd_with_a_user_supplied_detector(split, perfect, noisy, detector):
    same, worse = (
        evaluate_submission(
            split,
            predictions,
            metrics=("fvd",),
            i3d_path=str(detector),
            trust_detector=True,
            progress=False,
            evaluation_size=CLIP_SIZE,
        )[0]
        for predictions in (perfect, noisy)
    )
    assert same.metrics == ["fvd"] and not same.skipped
    assert same.row()["fvd_n"] == 4 and same.row("easy", "all")["fvd_n"] == 2
    assert same.row()["fvd"] == pytest.approx(0.0, abs=1e-6)
    assert worse.row()["fvd"] > 1e-4
    assert same.row("easy", "two_human")["fvd"] is None  # one window: no covariance, shown as "-"
    assert "tiny_i3d.pt" in same.conventions["fvd"] and "compare only at equal N" in same.conventions["fvd"]
    assert "(4)" in worse.markdown()


def test_missing_detector_file_is_an_error_not_a_skip(split, perfect, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_submission(
            split, perfect, i3d_path=str(tmp_path / "nope.pt"), progress=False, evaluation_size=CLIP_SIZE
        )


def test_json_structure_and_round_trip(split, noisy, tmp_path):
    results, _ = evaluate_submission(
        split, noisy, metrics=("ssim", "psnr", "speaker_sync"), progress=False, evaluation_size=CLIP_SIZE
    )
    results.model = "noisy-gt"
    path = results.write_json(tmp_path / "results.json")
    data = json.loads(path.read_text())
    assert data["format"] == "mit-bench-results/2" and data["complete"] is True
    assert data["evaluation_size"] == {"width": 32, "height": 24}
    assert (data["num_expected"], data["num_scored"]) == (4, 4)
    assert set(data["conventions"]) == {"ssim", "psnr", "speaker_sync"}
    assert len(data["table"]) == 9 and len(data["per_clip"]) == 4
    assert set(data["per_clip"][0]) >= {"clip_id", "subset", "difficulty", "num_frames", "ssim", "psnr"}
    assert BenchmarkResults.load(path).to_dict() == data


def test_model_card_round_trips(split, noisy, tmp_path):
    results, _ = evaluate_submission(
        split, noisy, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    card_path = write_model_card(results, tmp_path / "README.md", model_name="covog-tiny")
    card = ModelCard.load(card_path)
    evals = card.data.eval_results
    assert len(evals) == 9 * 2
    assert {e.task_type for e in evals} == {"other"}
    overall = [
        e for e in evals if e.dataset_config == "all" and e.metric_config == "all" and e.metric_type == "ssim"
    ]
    assert overall[0].metric_value == pytest.approx(results.row()["ssim"], abs=1e-4)
    assert "| all | all | 4 |" in card.text
    # Re-writing updates the results instead of duplicating them, and keeps the rest of the card.
    card_path.write_text(card_path.read_text().replace("# covog-tiny", "# covog-tiny\n\nHand-written intro."))
    write_model_card(results, card_path)
    again = ModelCard.load(card_path)
    assert len(again.data.eval_results) == 18 and "Hand-written intro." in again.text
    assert again.text.count("## MIT benchmark") == 1


def test_partial_model_card_only_when_allowed_and_labelled(split, perfect, tmp_path):
    partial_dir = tmp_path / "partial"
    partial_dir.mkdir()
    for path in list(perfect.iterdir())[:2]:
        (partial_dir / path.name).write_bytes(path.read_bytes())
    results, _ = evaluate_submission(
        split, partial_dir, metrics=("ssim",), progress=False, evaluation_size=CLIP_SIZE
    )
    with pytest.raises(PartialResultsError):
        write_model_card(results, tmp_path / "README.md")
    card = ModelCard.load(write_model_card(results, tmp_path / "README.md", allow_partial=True))
    assert all("PARTIAL 2/4" in e.metric_name for e in card.data.eval_results)
    assert "**Partial results**" in card.text and "partial" in card.data.tags


def test_cli_evaluate_on_a_dataset_folder(synthetic_dataset_dir, tmp_path, capsys, monkeypatch):
    import datasets

    monkeypatch.delenv("MIT_BENCH_I3D", raising=False)
    test = datasets.load_dataset(str(synthetic_dataset_dir), split="test")
    predictions = ground_truth_submission(test, tmp_path / "pred")
    status = main(
        [
            "evaluate",
            "--dataset",
            str(synthetic_dataset_dir),
            "--predictions",
            str(predictions),
            "--out",
            str(tmp_path / "results.json"),
            "--model-card",
            str(tmp_path / "card" / "README.md"),
            "--model-name",
            "ground-truth",
            "--eval-size",
            "128x72",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "| all | all | 4 |" in out and "FVD skipped" in out
    assert json.loads((tmp_path / "results.json").read_text())["complete"] is True
    assert ModelCard.load(tmp_path / "card" / "README.md").data.eval_results

    (predictions / next(iter(sorted(p.name for p in predictions.iterdir())))).unlink()
    status = main(
        [
            "evaluate",
            "--dataset",
            str(synthetic_dataset_dir),
            "--predictions",
            str(predictions),
            "--out",
            str(tmp_path / "partial.json"),
            "--model-card",
            str(tmp_path / "card2" / "README.md"),
            "--eval-size",
            "128x72",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1 and "INCOMPLETE: 3/4" in captured.out and "missing (1)" in captured.err
    assert "refusing to write a model card" in captured.err and not (tmp_path / "card2").exists()

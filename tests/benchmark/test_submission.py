import json

import numpy as np
import pytest
from bench_data import CLIP_SIZE, clip_frames, ground_truth_submission, make_test_split

from benchmark.model_card import PartialResultsError, write_model_card
from benchmark.scoring import evaluate_submission
from benchmark.submission import PROBLEM_KINDS, clip_specs, validate_submission
from mit_dataset.video_io import write_video

CLIPS = tuple(
    (f"c{i}", "two_human" if i % 2 else "multi_human", "easy" if i < 4 else "challenging") for i in range(8)
)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return make_test_split(tmp_path_factory.mktemp("gt"), clips=CLIPS)


@pytest.fixture(scope="module")
def broken_submission(split, tmp_path_factory):
    """c0 good; then one problem per clip, plus an extra file (8 frames of 32x24 at 25 fps expected)."""
    out = ground_truth_submission(split, tmp_path_factory.mktemp("broken"))
    (out / "c1.mp4").unlink()  # missing
    write_video(out / "c2.mp4", clip_frames(2, 6, 24, 32), fps=25)  # frame count
    write_video(out / "c3.mp4", clip_frames(3, 8, 32, 48), fps=25)  # resolution
    write_video(out / "c4.mp4", clip_frames(4, 8, 24, 32), fps=30)  # fps
    (out / "c5.mp4").write_bytes(b"this is not an mp4 file")  # unreadable
    (out / "c6.mp4").unlink()
    frames = clip_frames(6, 8, 24, 32).astype(np.float32) / 255
    frames[3, 5, 5, 1] = np.nan
    np.save(out / "c6.npy", frames)  # NaN
    np.save(out / "c7.npy", clip_frames(7, 8, 24, 32))  # duplicate of c7.mp4
    (out / "not_a_clip.mp4").write_bytes((out / "c0.mp4").read_bytes())  # extra
    (out / ".c1-tmp123.mp4").write_bytes(b"half-written temporary")  # hidden: ignored
    (out / "notes.txt").write_text("ignored")
    return out


def test_perfect_submission_is_valid(split, tmp_path):
    report = validate_submission(ground_truth_submission(split, tmp_path), clip_specs(split))
    assert report.ok and not report.problems and sorted(report.valid) == sorted(c[0] for c in CLIPS)
    assert "8/8 clips valid" in report.format()


def test_each_problem_kind_is_reported(split, broken_submission):
    report = validate_submission(broken_submission, clip_specs(split))
    kinds = {p.clip_id: p.kind for p in report.problems}
    assert kinds == {
        "c1": "missing",
        "c2": "frame_count",
        "c3": "resolution",  # 48x32: neither the evaluation size (640x384 by default) nor the clip's 32x24
        "c4": "fps",
        "c5": "unreadable",
        "c6": "nan",
        "c7": "duplicate",
        "not_a_clip": "extra",
    }
    assert report.valid == ["c0"]
    text = report.format()
    for kind in set(kinds.values()):
        assert f"{kind} (1):" in text
    assert (
        "6 frames, expected 8" in text
        and "48x32, expected 640x384 (the evaluation size) or 32x24 (the clip's size)" in text
        and "30 fps, expected 25" in text
    )
    assert {p.kind for p in report.problems} <= set(PROBLEM_KINDS)


def test_out_of_range_float_and_bad_npy(split, tmp_path):
    out = ground_truth_submission(split, tmp_path)
    (out / "c0.mp4").unlink()
    np.save(out / "c0.npy", np.full((8, 24, 32, 3), 1.5, np.float32))
    (out / "c1.mp4").unlink()
    np.save(out / "c1.npy", np.zeros((8, 24, 32), np.float32))  # no channel axis
    report = validate_submission(out, clip_specs(split))
    kinds = {p.clip_id: p.kind for p in report.problems}
    assert kinds == {"c0": "nan", "c1": "unreadable"}
    assert "expected [0, 1]" in report.format()


def test_missing_folder_reports_every_clip(split, tmp_path):
    report = validate_submission(tmp_path / "nowhere", clip_specs(split))
    assert len(report.problems_of("missing")) == len(CLIPS) and not report.valid


def test_scoring_a_broken_submission_is_incomplete_not_a_crash(split, broken_submission, tmp_path):
    results, _ = evaluate_submission(
        split, broken_submission, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    assert not results.complete and results.num_scored == 1 and results.num_expected == 8
    assert [r["clip_id"] for r in results.per_clip] == ["c0"]
    assert "INCOMPLETE: 1/8" in results.markdown()
    data = json.loads(results.write_json(tmp_path / "r.json").read_text())
    assert data["complete"] is False and len(data["problems"]) == 8
    with pytest.raises(PartialResultsError, match="--allow-partial"):
        write_model_card(results, tmp_path / "README.md")
    assert not (tmp_path / "README.md").exists()


def test_npy_float_submission_scores_like_the_video(split, tmp_path):
    from mit_dataset.video_io import read_video_frames

    out = ground_truth_submission(split, tmp_path)
    for clip_id, *_ in CLIPS:
        frames = read_video_frames(out / f"{clip_id}.mp4")
        (out / f"{clip_id}.mp4").unlink()
        np.save(out / f"{clip_id}.npy", frames.astype(np.float32) / 255)
    results, report = evaluate_submission(
        split, out, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    assert report.ok and results.complete
    assert results.row()["ssim"] == pytest.approx(1.0) and results.row()["psnr"] == pytest.approx(100.0)


def test_failures_found_while_scoring_are_problems_not_crashes(split, tmp_path, monkeypatch):
    from benchmark import scoring

    out = ground_truth_submission(split, tmp_path)
    real_load, real_score = scoring.load_prediction_frames, scoring.ClipScorer.score

    def load(path, evaluation_size=None):
        if path.stem == "c1":  # passes the header probe, then fails to decode
            raise ValueError(f"{path}: not a readable video (truncated)")
        return real_load(path, evaluation_size)

    def score(self, prediction, target, row):
        values, features = real_score(self, prediction, target, row)
        if row["clip_id"] == "c2":
            values["ssim"] = float("nan")
        return values, features

    monkeypatch.setattr(scoring, "load_prediction_frames", load)
    monkeypatch.setattr(scoring.ClipScorer, "score", score)
    results, report = evaluate_submission(
        split, out, metrics=("ssim", "psnr"), progress=False, evaluation_size=CLIP_SIZE
    )
    assert {p.clip_id: p.kind for p in report.problems} == {"c1": "unreadable", "c2": "nan"}
    assert "c1" not in report.valid and "c2" not in report.valid
    assert not results.complete and results.num_scored == 6
    assert "ssim not finite" in report.format()


def test_an_extra_file_alone_is_reported_but_leaves_results_complete(split, tmp_path):
    out = ground_truth_submission(split, tmp_path)
    (out / "stray.mp4").write_bytes((out / "c0.mp4").read_bytes())
    results, report = evaluate_submission(
        split, out, metrics=("ssim",), progress=False, evaluation_size=CLIP_SIZE
    )
    assert [p.kind for p in report.problems] == ["extra"] and report.ok
    assert results.complete and "1 extra file(s) ignored" in results.markdown()

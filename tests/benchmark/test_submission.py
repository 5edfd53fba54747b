import json
import re
from pathlib import Path

import numpy as np
import pytest
from bench_data import CLIP_SIZE, clip_frames, ground_truth_submission, make_test_split

from benchmark.model_card import PartialResultsError, write_model_card
from benchmark.scoring import evaluate_submission
from benchmark.submission import PROBLEM_KINDS, clip_specs, validate_submission
from mit_dataset.video_io import write_video
from mit_talk.cli import mit_bench as main

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
    from benchmark import scoring, submission

    out = ground_truth_submission(split, tmp_path)
    real_load, real_score = submission.load_prediction_frames, scoring.ClipScorer.score

    def load(path, evaluation_size=None):
        if path.stem == "c1":  # passes the header probe, then fails to decode
            raise ValueError(f"{path}: not a readable video (truncated)")
        return real_load(path, evaluation_size)

    def score(self, prediction, target, row):
        values, features = real_score(self, prediction, target, row)
        if row["clip_id"] == "c2":
            values["ssim"] = float("nan")
        return values, features

    monkeypatch.setattr(submission, "load_prediction_frames", load)
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


def _truncated_faststart_mp4(path: Path, frames: np.ndarray, some_frames_decode: bool) -> None:
    """An mp4 whose index (moov) sits before the data, cut inside the data: the index still lists every frame
    (issue 10: such a file passed a header-only validation). The cut is searched from the end so that some
    frames still decode, or none, whatever the encoder's bytes."""
    import av

    from mit_dataset.media import MediaError, probe_media

    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    for cut in range(len(data) - 1, data.find(b"mdat"), -max(1, len(data) // 100)):
        path.write_bytes(data[:cut])
        try:
            decoded = probe_media(path).num_frames
        except MediaError:
            decoded = 0
        if decoded < len(frames) and (decoded > 0) == some_frames_decode:
            return
    raise AssertionError(f"no cut of {path.name} leaves {'some' if some_frames_decode else 'no'} frames")


HOSTILE_CLIPS = (*CLIPS, ("c8", "two_human", "challenging"))


def test_validate_and_evaluate_agree_on_hostile_files(tmp_path, monkeypatch, capsys):
    """``mit-bench validate`` and ``mit-bench evaluate`` refuse the same files with the same one-line reasons,
    each naming the file and what was expected, and evaluate scores exactly the clips validate accepts."""
    from benchmark import submission

    split = make_test_split(tmp_path / "gt", clips=HOSTILE_CLIPS)
    split.save_to_disk(str(tmp_path / "dataset"))
    out = ground_truth_submission(split, tmp_path / "predictions")
    _truncated_faststart_mp4(out / "c1.mp4", clip_frames(1, 8, 24, 32), some_frames_decode=False)
    _truncated_faststart_mp4(out / "c8.mp4", clip_frames(8, 8, 24, 32), some_frames_decode=True)
    write_video(out / "c2.mp4", clip_frames(2, 6, 24, 32), fps=25)  # wrong frame count
    write_video(out / "c3.mp4", clip_frames(3, 8, 16, 24), fps=25)  # wrong size
    (out / "c4.mp4").write_bytes(b"")  # zero bytes
    (out / "c5.mp4").write_text("#!/bin/sh\necho not a video\n")  # not a video, named .mp4
    (out / "c6.mp4").unlink()
    np.save(out / "c6.npy", np.full((8, 24, 32, 3), 1.5, np.float32))  # out of range
    real_load = submission.load_prediction_frames

    def load(path, evaluation_size=None):
        if path.stem == "c7" and evaluation_size is not None:  # a file the probe reads but decoding does not
            raise ValueError(f"{path}: video is undecodable after 3 frames (corrupt data)")
        return real_load(path, evaluation_size)

    monkeypatch.setattr(submission, "load_prediction_frames", load)
    base = ["--dataset", str(tmp_path / "dataset"), "--predictions", str(out), "--eval-size", str(CLIP_SIZE)]
    assert main(["validate", *base]) == 1
    validated = capsys.readouterr().out.strip()
    assert (
        main(["evaluate", *base, "--out", str(tmp_path / "r.json"), "--metrics", "ssim", "--no-progress"])
        == 1
    )
    evaluated = capsys.readouterr()
    assert evaluated.err.strip() == validated  # the same report, line for line
    assert validated.startswith(f"submission {out}: 1/9 clips valid, 8 problem(s)")
    scored = json.loads((tmp_path / "r.json").read_text())
    assert [c["clip_id"] for c in scored["per_clip"]] == ["c0"] and not scored["complete"]

    report = validate_submission(out, clip_specs(split), CLIP_SIZE)
    assert report.valid == ["c0"]
    kinds = {p.clip_id: p.kind for p in report.problems}
    assert kinds == {
        "c1": "unreadable",
        "c2": "frame_count",
        "c3": "resolution",
        "c4": "unreadable",
        "c5": "unreadable",
        "c6": "nan",
        "c7": "unreadable",
        "c8": "frame_count",
    }
    messages = {p.clip_id: p.message for p in report.problems}
    for clip_id, message in messages.items():
        assert "\n" not in message and f"{clip_id}.{'npy' if clip_id == 'c6' else 'mp4'}" in message
    expected = (
        "expected a video FFmpeg decodes (or an .npy array) of 8 frames at 32x24 (the evaluation size and the "
        "clip's), 25 fps"
    )
    assert "c1.mp4: video is undecodable after 0 frames" in messages["c1"] and messages["c1"].endswith(
        expected
    )
    assert messages["c2"] == "c2.mp4: 6 frames, expected 8"
    assert messages["c3"] == "c3.mp4: 24x16, expected 32x24 (the evaluation size and the clip's)"
    assert messages["c4"].endswith(f"c4.mp4: empty file (0 bytes); {expected}")
    assert "c5.mp4: not a readable video" in messages["c5"] and messages["c5"].endswith(expected)
    assert messages["c6"] == "c6.npy: float pixel values in [1.5, 1.5], expected [0, 1]"
    assert "undecodable after 3 frames" in messages["c7"]
    assert re.fullmatch(
        r"c8.mp4: [1-7] frames \(its container lists 8: truncated or corrupt\), expected 8", messages["c8"]
    )


@pytest.mark.parametrize(
    "command, argument",
    [
        (["evaluate", "--dataset", ".", "--predictions", "{missing}", "--out", "{out}"], "--predictions"),
        (["evaluate", "--dataset", ".", "--predictions", "{file}", "--out", "{out}"], "--predictions"),
        (["validate", "--dataset", ".", "--predictions", "{missing}"], "--predictions"),
        (["leaderboard", "{missing}", "--out", "{out}"], "SUBMISSIONS"),
        (["leaderboard", ".", "--dataset", "./no-dataset", "--out", "{out}"], "--dataset"),
        (["predict", "--model", ".", "--dataset", "./no-dataset", "--out", "{out}"], "--dataset"),
    ],
)
def test_a_missing_input_folder_is_one_line_naming_the_argument(
    tmp_path, monkeypatch, capsys, command, argument
):
    # `evaluate --predictions /nonexistent` used to score "every clip missing" and write an incomplete results file.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    paths = {
        "missing": str(tmp_path / "nowhere"),
        "file": str(tmp_path / "a-file"),
        "out": str(tmp_path / "out"),
    }
    assert main([part.format(**paths) for part in command]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert argument in captured.err and (
        "does not exist" in captured.err or "is not a folder" in captured.err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written

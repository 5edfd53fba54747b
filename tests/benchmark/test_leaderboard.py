import json

import pytest

from benchmark.leaderboard import build_leaderboard, write_leaderboard
from benchmark.scoring import TABLE_ROWS, BenchmarkResults
from mit_talk.cli import mit_bench as main


def _results(model, ssim, psnr, fvd=None, num_scored=4, num_expected=4) -> BenchmarkResults:
    """Results whose every Table 2 cell has the given values (scored clips made up, as a runner would list)."""
    metrics = ["ssim", "psnr"] + (["fvd"] if fvd is not None else [])
    table = []
    for difficulty, subset in TABLE_ROWS:
        row = {"difficulty": difficulty, "subset": subset, "n": num_scored, "ssim": ssim, "psnr": psnr}
        if fvd is not None:
            row.update(fvd=fvd, fvd_n=num_scored)
        table.append(row)
    per_clip = [
        {"clip_id": f"c{i}", "subset": "two_human", "difficulty": "easy", "ssim": ssim, "psnr": psnr}
        for i in range(num_scored)
    ]
    problems = [
        {"clip_id": f"c{i}", "kind": "missing", "message": f"c{i}: no c{i}.mp4 (or .npy) prediction"}
        for i in range(num_scored, num_expected)
    ]
    return BenchmarkResults(
        dataset="mit-talking",
        config="all",
        predictions_dir="preds",
        num_expected=num_expected,
        per_clip=per_clip,
        table=table,
        metrics=metrics,
        skipped={} if fvd is not None else {"fvd": "no I3D file given"},
        conventions={},
        problems=problems,
        model=model,
    )


@pytest.fixture
def submissions(tmp_path):
    folder = tmp_path / "submissions"
    _results("covog", 0.64, 19.69, fvd=307.35).write_json(folder / "covog.json")
    _results("animate-anyone", 0.62, 19.47, fvd=337.60).write_json(folder / "animate_anyone.json")
    _results("no-iad", 0.62, 19.60).write_json(folder / "no_iad" / "results.json")  # sub-folder layout
    _results("half-done", 0.99, 30.0, num_scored=2).write_json(folder / "half.json")
    (folder / "garbage.json").write_text("{not json")
    bad = _results("liar", 0.9, 25.0).to_dict()
    bad["complete"] = True
    bad["num_scored"], bad["per_clip"] = 1, bad["per_clip"][:1]
    (folder / "liar.json").write_text(json.dumps(bad))
    nan = _results("nan", 0.5, 10.0).to_dict()
    nan["table"][-1]["ssim"] = float("nan")
    (folder / "nan.json").write_text(json.dumps(nan))
    rows = _results("rows", 0.5, 10.0).to_dict()
    rows["table"] = rows["table"][:-1]
    (folder / "rows.json").write_text(json.dumps(rows))
    other = _results("other", 0.5, 10.0).to_dict()
    other["format"] = "something-else/1"
    (folder / "other.json").write_text(json.dumps(other))
    return folder


def test_ranking_and_rejections(submissions):
    board = build_leaderboard(submissions)
    assert [e.name for e in board.entries] == ["covog", "no-iad", "animate-anyone"]  # SSIM, ties by PSNR
    rejected = {path.name: reason for path, reason in board.rejected}
    assert set(rejected) == {"garbage.json", "half.json", "liar.json", "nan.json", "rows.json", "other.json"}
    assert "not a readable results JSON" in rejected["garbage.json"]
    assert "incomplete" in rejected["half.json"] and "--allow-partial" in rejected["half.json"]
    assert "field 'complete' is True" in rejected["liar.json"]
    assert "ssim is nan" in rejected["nan.json"]
    assert "exactly the rows" in rejected["rows.json"]
    assert "field 'format'" in rejected["other.json"]


def test_rank_by_fvd_lower_is_better_and_partial_allowed(submissions):
    board = build_leaderboard(submissions, rank_by="fvd")
    assert [e.name for e in board.entries] == ["covog", "animate-anyone"]  # no-iad has no FVD: rejected
    board = build_leaderboard(submissions, allow_partial=True)
    assert [e.name for e in board.entries][-1] == "half-done"  # partial entries rank after complete ones
    assert "| 4 | half-done | 2 |" in board.markdown() and "PARTIAL" in board.markdown()


def test_markdown_html_and_plot(submissions, tmp_path):
    board = build_leaderboard(submissions)
    md, png = write_leaderboard(board, tmp_path / "out" / "leaderboard.md")
    text = md.read_text()
    assert "| 1 | covog | 4 | 0.6400 | 19.69 | 307.35 (4) | complete |" in text
    assert "no-iad: FVD skipped" in text and "Rejected garbage.json" in text
    assert png == tmp_path / "out" / "leaderboard.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page, _ = write_leaderboard(board, tmp_path / "leaderboard.html")
    assert "<td>covog</td>" in page.read_text() and (tmp_path / "leaderboard.png").is_file()
    with pytest.raises(ValueError, match=".md or .html"):
        write_leaderboard(board, tmp_path / "leaderboard.txt")


def test_fvd_at_different_n_is_flagged(tmp_path):
    _results("a", 0.6, 19.0, fvd=300.0).write_json(tmp_path / "a.json")
    _results("b", 0.5, 18.0, fvd=200.0, num_scored=3).write_json(tmp_path / "b.json")
    notes = build_leaderboard(tmp_path, allow_partial=True).notes()
    assert any("different N" in note for note in notes)


def test_results_on_another_test_set_are_rejected(tmp_path):
    _results("a", 0.6, 19.0).write_json(tmp_path / "a.json")
    _results("b", 0.5, 18.0).write_json(tmp_path / "b.json")
    _results("small", 0.9, 30.0, num_scored=3, num_expected=3).write_json(tmp_path / "c.json")
    board = build_leaderboard(tmp_path)
    assert [e.name for e in board.entries] == ["a", "b"]
    assert "another test set" in {p.name: r for p, r in board.rejected}["c.json"]


def test_cli_leaderboard(submissions, tmp_path, capsys):
    assert main(["leaderboard", str(submissions), "--out", str(tmp_path / "lb.md")]) == 0
    assert "| 1 | covog |" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["leaderboard", str(empty), "--out", str(tmp_path / "lb2.md")]) == 1
    assert main(["leaderboard", str(tmp_path / "missing"), "--out", str(tmp_path / "lb3.md")]) == 2

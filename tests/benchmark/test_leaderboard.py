import json
import re

import numpy as np
import pytest

from benchmark import leaderboard_plot
from benchmark.leaderboard import build_leaderboard, write_leaderboard
from benchmark.scoring import TABLE_ROWS, BenchmarkResults
from mit_talk.cli import mit_bench as main

FINGERPRINT = {"format": "mit-test-set/1", "fingerprint": "a" * 64, "num_clips": 4}
SUBSETS, DIFFICULTIES = ("two_human", "multi_human"), ("easy", "challenging")


def _results(
    model, ssim, psnr, fvd=None, num_scored=4, num_expected=4, sync=None, fingerprint=None
) -> BenchmarkResults:
    """Consistent results: per-clip values as a runner lists them, every table cell computed from them."""
    metrics = (
        ["ssim", "psnr"]
        + (["fvd"] if fvd is not None else [])
        + (["speaker_sync"] if sync is not None else [])
    )
    per_clip = []
    for i in range(num_scored):
        clip = {"clip_id": f"c{i}", "subset": SUBSETS[i % 2], "difficulty": DIFFICULTIES[i // 2 % 2]}
        clip.update(num_frames=32, ssim=ssim, psnr=psnr)
        if sync is not None:
            clip["speaker_sync"] = sync
        per_clip.append(clip)
    table = []
    for difficulty, subset in TABLE_ROWS:
        clips = [
            c for c in per_clip if difficulty in ("all", c["difficulty"]) and subset in ("all", c["subset"])
        ]
        row = {"difficulty": difficulty, "subset": subset, "n": len(clips)}
        for metric in metrics:
            if metric == "fvd":
                row["fvd_n"] = 2 * len(clips)
                row["fvd"] = fvd if clips else None
                continue
            row[metric] = float(np.mean([c[metric] for c in clips])) if clips else None
            if metric == "speaker_sync":
                row["speaker_sync_n"] = len(clips)
        table.append(row)
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
        test_set=fingerprint or {**FINGERPRINT, "num_clips": num_expected},
    )


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data.to_dict() if isinstance(data, BenchmarkResults) else data))


@pytest.fixture
def submissions(tmp_path):
    folder = tmp_path / "submissions"
    _results("covog", 0.64, 19.69, fvd=307.35, sync=0.4).write_json(folder / "covog.json")
    _results("animate-anyone", 0.62, 19.47, fvd=337.60, sync=0.1).write_json(folder / "animate_anyone.json")
    _results("no-iad", 0.62, 19.60).write_json(folder / "no_iad" / "results.json")  # sub-folder layout
    _results("half-done", 0.99, 30.0, num_scored=2).write_json(folder / "half.json")
    (folder / "garbage.json").write_text("{not json")
    bad = _results("liar", 0.9, 25.0).to_dict()
    bad["num_scored"], bad["per_clip"] = 1, bad["per_clip"][:1]
    _write(folder, "liar.json", bad)
    nan = _results("nan", 0.5, 10.0).to_dict()
    nan["table"][-1]["ssim"] = float("nan")
    _write(folder, "nan.json", nan)
    rows = _results("rows", 0.5, 10.0).to_dict()
    rows["table"] = rows["table"][:-1]
    _write(folder, "rows.json", rows)
    other = _results("other", 0.5, 10.0).to_dict()
    other["format"] = "something-else/1"
    _write(folder, "other.json", other)
    return folder


def _rejected(board) -> dict[str, str]:
    return {path.name: reason for path, reason in board.rejected}


def test_ranking_and_rejections(submissions):
    board = build_leaderboard(submissions)
    assert [e.name for e in board.entries] == ["covog", "no-iad", "animate-anyone"]  # SSIM, ties by PSNR
    assert not any(e.verified for e in board.entries)
    rejected = _rejected(board)
    assert set(rejected) == {"garbage.json", "half.json", "liar.json", "nan.json", "rows.json", "other.json"}
    assert "not a readable results JSON" in rejected["garbage.json"]
    assert "incomplete" in rejected["half.json"] and "--allow-partial" in rejected["half.json"]
    assert "table row easy/multi_human: n is 1 but per_clip gives 0" in rejected["liar.json"]
    assert "table row all/all: ssim is nan" in rejected["nan.json"]
    assert "exactly the rows" in rejected["rows.json"]
    assert "field 'format'" in rejected["other.json"]


# The examples: numbers that do not follow from per_clip, values out of range, a forged n, another test set.
@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: d["table"][-1].update(ssim=0.99), "table row all/all: ssim is 0.99 but the mean of its 4 per-clip values is 0.5"),
        (lambda d: [c.update(ssim=1e308) for c in d["per_clip"]], "per_clip[0] (clip 'c0'): ssim is 1e+308, outside [-1, 1]"),
        (lambda d: [c.update(ssim=-5.0) for c in d["per_clip"]], "ssim is -5.0, outside [-1, 1]"),
        (lambda d: d["table"][-1].update(n=1000), "table row all/all: n is 1000 but per_clip gives 4"),
        (lambda d: d["table"][-1].update(fvd=-3.0), "table row all/all: fvd is -3.0, outside [0, inf]"),
        (lambda d: d["table"][-1].update(psnr=float("inf")), "table row all/all: psnr is inf, outside [0, 100]"),
        (lambda d: d["table"][-1].update(fvd_n=9), "table row all/all: fvd_n is 9 but per_clip gives 8"),
        (lambda d: d["test_set"].update(fingerprint="b" * 64), "scored on another test set (fingerprint bbbbbbbbbbbbbbbb)"),
    ],
)  # fmt: skip
def test_a_results_file_that_lies_is_rejected(tmp_path, edit, reason):
    _results("honest", 0.6, 19.0, fvd=300.0).write_json(tmp_path / "honest.json")
    _results("also-honest", 0.55, 18.0, fvd=310.0).write_json(tmp_path / "also.json")
    data = _results("liar", 0.5, 10.0, fvd=200.0).to_dict()
    edit(data)
    _write(tmp_path, "liar.json", data)
    board = build_leaderboard(tmp_path, rank_by="fvd")
    assert [e.name for e in board.entries] == ["honest", "also-honest"]
    assert reason in _rejected(board)["liar.json"]


@pytest.mark.parametrize(
    "edit, reason",
    [
        (lambda d: d.update(model=7), "field 'model' must be a string, got int 7"),
        (lambda d: d.update(model=["a"]), "field 'model' must be a string, got list"),
        (lambda d: d.update(metrics=["ssim", {}]), "field 'metrics' has {}, expected metric names"),
        (lambda d: [row.pop("n") for row in d["table"]], "field 'n' is missing, expected an integer"),
        (lambda d: d["per_clip"][1].update(psnr="19.5"), "per_clip[1] (clip 'c1'): psnr is '19.5', expected a number"),
        (lambda d: d.update(table={"all": 1}), "field 'table' must be a list, got dict"),
        (lambda d: d["per_clip"].append(7), "per_clip[4] must be an object, got int"),
        (lambda d: d.update(num_expected=True), "field 'num_expected' must be a int, got bool True"),
    ],
)  # fmt: skip
def test_malformed_results_are_rejected_naming_the_field(tmp_path, edit, reason):
    data = _results("x", 0.5, 10.0).to_dict()
    edit(data)
    _write(tmp_path, "bad.json", data)
    _results("ok", 0.6, 19.0).write_json(tmp_path / "ok.json")
    board = build_leaderboard(tmp_path)  # no traceback: a rejection of that one file
    assert [e.name for e in board.entries] == ["ok"]
    assert reason in _rejected(board)["bad.json"]


def test_rank_by_fvd_lower_is_better_and_partial_allowed(submissions):
    board = build_leaderboard(submissions, rank_by="fvd")
    assert [e.name for e in board.entries] == ["covog", "animate-anyone"]  # no-iad has no FVD: rejected
    board = build_leaderboard(submissions, allow_partial=True)
    assert [e.name for e in board.entries][-1] == "half-done"  # partial entries rank after complete ones
    assert "| 4 | half\\-done | 2 |" not in board.markdown()  # "-" needs no escape
    assert "| 4 | half-done | 2 |" in board.markdown() and "PARTIAL" in board.markdown()


def test_markdown_html_and_plot(submissions, tmp_path):
    board = build_leaderboard(submissions)
    md, png = write_leaderboard(board, tmp_path / "out" / "leaderboard.md")
    text = md.read_text()
    assert "| 1 | covog | 4 | 0.6400 | 19.69 | 307.35 (8) | 0.4000 | complete | self-reported |" in text
    assert "no-iad: FVD skipped" in text and "Rejected garbage\\.json" in text
    assert png == tmp_path / "out" / "leaderboard.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page, _ = write_leaderboard(board, tmp_path / "leaderboard.html")
    assert "<td>covog</td>" in page.read_text() and (tmp_path / "leaderboard.png").is_file()
    with pytest.raises(ValueError, match=".md or .html"):
        write_leaderboard(board, tmp_path / "leaderboard.txt")


EVIL = "$\\frac{}$ evil | 9.99 | x |\n| 1 | [click](http://a.example) `x` ![i](j) <script>x</script>"


def test_user_text_is_escaped_in_markdown_html_and_the_plot(tmp_path):
    _results(EVIL, 0.6, 19.0).write_json(tmp_path / "subs" / "a.json")
    _results("honest", 0.5, 18.0).write_json(tmp_path / "subs" / "b.json")
    board = build_leaderboard(tmp_path / "subs")
    md, png = write_leaderboard(board, tmp_path / "lb.md")  # mathtext would fail on $\frac{}$
    text = md.read_text()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, rule, two entries: no forged row
    evil_row = table[2]
    assert evil_row.count(" | ") == table[3].count(" | ")  # same number of cells as an honest row
    assert "](" not in text.replace("\\](", "") and "http://" not in text and "<script>" not in text
    assert "\\[click\\]\\(http\\:" in evil_row and "\\`x\\`" in evil_row and "\\!\\[i\\]" in evil_row
    assert len(EVIL) < 100  # every part of it reached the page (names are cut at MAX_CHARS)
    html_page, _ = write_leaderboard(board, tmp_path / "lb.html")
    assert "<script>" not in html_page.read_text() and "&lt;script&gt;" in html_page.read_text()
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_output_is_all_or_nothing(submissions, tmp_path, monkeypatch):
    board = build_leaderboard(submissions)

    def broken(board, dpi=110):
        raise ValueError("cannot render")

    monkeypatch.setattr(leaderboard_plot, "render_png", broken)
    with pytest.raises(ValueError, match="cannot render"):
        write_leaderboard(board, tmp_path / "out" / "lb.md")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_plot_labels_stay_inside_their_axes_and_speaker_sync_has_a_panel(submissions):
    board = build_leaderboard(submissions)
    figure = leaderboard_plot.draw_figure(board)
    try:
        renderer = figure.canvas.get_renderer()
        titles = [ax.get_title() for ax in figure.axes]
        assert titles == ["SSIM ↑", "PSNR ↑", "FVD ↓", "Speaker sync ↑"]
        for ax in figure.axes:
            box = ax.get_window_extent(renderer)
            for label in ax.texts:  # the value labels above the bars
                extent = label.get_window_extent(renderer)
                assert box.y0 <= extent.y0 and extent.y1 <= box.y1 - 1, (ax.get_title(), label.get_text())
    finally:
        leaderboard_plot.close(figure)


def test_fvd_at_different_n_is_flagged(tmp_path):
    _results("a", 0.6, 19.0, fvd=300.0).write_json(tmp_path / "a.json")
    data = _results("b", 0.5, 18.0, fvd=200.0).to_dict()
    for clip in data["per_clip"]:
        clip["num_frames"] = 48
    for row in data["table"]:
        row["fvd_n"] = row["n"] * 3
    _write(tmp_path, "b.json", data)
    notes = build_leaderboard(tmp_path).notes(str)
    assert any("different N" in note for note in notes)


def test_results_without_or_with_another_fingerprint_are_rejected(tmp_path):
    _results("a", 0.6, 19.0).write_json(tmp_path / "a.json")
    _results("b", 0.5, 18.0).write_json(tmp_path / "b.json")
    _results("other", 0.9, 30.0, fingerprint={**FINGERPRINT, "fingerprint": "c" * 64}).write_json(
        tmp_path / "c.json"
    )
    old = _results("old", 0.9, 30.0).to_dict()
    del old["test_set"]
    _write(tmp_path, "d.json", old)
    board = build_leaderboard(tmp_path)
    assert [e.name for e in board.entries] == ["a", "b"]
    rejected = _rejected(board)
    assert "another test set" in rejected["c.json"] and "no test-set fingerprint" in rejected["d.json"]


def test_cli_leaderboard(submissions, tmp_path, capsys):
    assert main(["leaderboard", str(submissions), "--out", str(tmp_path / "lb.md")]) == 0
    assert re.search(r"^1 +covog ", capsys.readouterr().out, re.MULTILINE)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["leaderboard", str(empty), "--out", str(tmp_path / "lb2.md")]) == 1
    assert main(["leaderboard", str(tmp_path / "missing"), "--out", str(tmp_path / "lb3.md")]) == 2


def test_the_terminal_summary_is_plain_text(tmp_path, capsys):
    # Markdown escapes belong to the .md file; the terminal showed "evil \\| 9\\.99" and "Test set\\:".
    name = "evil (v2): x_y | 9.99\x1b[31m\nred"
    _results(name, 0.6, 19.0).write_json(tmp_path / "subs" / "a.json")
    _results("honest", 0.5, 18.0).write_json(tmp_path / "subs" / "b.json")
    assert main(["leaderboard", str(tmp_path / "subs"), "--out", str(tmp_path / "lb.md")]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("1 "))
    assert "evil (v2): x_y | 9.99 [31m red" in row and "\\" not in printed and "\x1b" not in printed
    assert "Ranked by SSIM" in printed and "evil \\(v2\\)\\:" in (tmp_path / "lb.md").read_text()

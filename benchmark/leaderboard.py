"""``mit-bench leaderboard``: validate results JSON files, rank them, render markdown or HTML and a PNG plot.

Entries are ranked on one Table 2 cell (all test clips by default) by one metric (SSIM by default; PSNR then
breaks ties). Invalid files are rejected with the reason, and so are results scored on another test set
(dataset config / number of test clips) than most entries; incomplete results are rejected too unless
``allow_partial``, and then shown marked as partial. FVD values are only comparable at equal N: the table
says so when the entries' N differ.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mit_dataset.atomic import atomic_write_text

from .scoring import METRIC_LABELS, METRICS, SUBSET_LABELS, TABLE_ROWS, BenchmarkResults


@dataclass
class Entry:
    name: str
    path: Path
    results: BenchmarkResults

    @property
    def partial(self) -> bool:
        return not self.results.complete


@dataclass
class Leaderboard:
    entries: list[Entry]  # ranked, best first
    rejected: list[tuple[Path, str]]
    rank_by: str
    difficulty: str
    subset: str

    def cell(self, entry: Entry) -> dict:
        return entry.results.row(self.difficulty, self.subset)

    @property
    def metrics(self) -> list[str]:
        present = {m for e in self.entries for m in e.results.metrics}
        return [m for m in METRICS if m in present]

    def rows(self) -> list[list[str]]:
        rows = []
        for rank, entry in enumerate(self.entries, start=1):
            cell = self.cell(entry)
            values = [_format(m, cell) for m in self.metrics]
            status = "PARTIAL" if entry.partial else "complete"
            rows.append([str(rank), entry.name, str(cell["n"]), *values, status])
        return rows

    def header(self) -> list[str]:
        return (
            ["Rank", "Model", "N"]
            + [METRIC_LABELS[m] + (" ↑" if METRICS[m] else " ↓") for m in self.metrics]
            + ["Status"]
        )

    def notes(self) -> list[str]:
        cell = f"{self.difficulty} / {SUBSET_LABELS[self.subset]}"
        notes = [f"Ranked by {METRIC_LABELS[self.rank_by]} on the {cell} test clips."]
        fvd_ns = {self.cell(e).get("fvd_n") for e in self.entries if self.cell(e).get("fvd") is not None}
        if len(fvd_ns) > 1:
            notes.append(f"FVD values were computed at different N ({sorted(fvd_ns)}): do not compare them.")
        for entry in self.entries:
            if "fvd" in entry.results.skipped:
                notes.append(f"{entry.name}: FVD skipped ({entry.results.skipped['fvd']}).")
            if entry.partial:
                notes.append(f"{entry.name}: PARTIAL results ({entry.results.status_line()}).")
        for path, reason in self.rejected:
            notes.append(f"Rejected {path.name}: {reason}")
        return notes

    def markdown(self) -> str:
        lines = ["# MIT benchmark leaderboard", ""]
        lines.append("| " + " | ".join(self.header()) + " |")
        lines.append("|" + "|".join(["---:", "---", "---:"] + ["---:"] * len(self.metrics) + ["---"]) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        lines.append("")
        lines += [f"- {note}" for note in self.notes()]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        esc = html.escape
        head = "".join(f"<th>{esc(h)}</th>" for h in self.header())
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>\n" for row in self.rows())
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes())
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>MIT benchmark leaderboard</title>'
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}</style>"
            f"</head><body>\n<h1>MIT benchmark leaderboard</h1>\n<table><thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}</tbody></table>\n<ul>{notes}</ul>\n</body></html>\n"
        )

    def plot(self, path: str | Path) -> Path:
        """Bar charts of SSIM / PSNR / FVD per entry (the ranked cell), saved as PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = [m for m in ("ssim", "psnr", "fvd") if m in self.metrics] or ["ssim"]
        names = [e.name for e in self.entries]
        fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown) + 1, 3.2), squeeze=False)
        for ax, metric in zip(axes[0], shown):
            values = [self.cell(e).get(metric) for e in self.entries]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(
                range(len(names)), heights, color=["#c44" if e.partial else "#48a" for e in self.entries]
            )
            for bar, value in zip(bars, values):
                label = "n/a" if value is None else f"{value:.3g}"
                ax.annotate(
                    label,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
            ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
            ax.set_title(METRIC_LABELS[metric] + (" ↑" if METRICS[metric] else " ↓"), fontsize=9)
        fig.suptitle(f"MIT test, {self.difficulty} / {SUBSET_LABELS[self.subset]} (red: partial)", fontsize=9)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _format(metric: str, cell: dict) -> str:
    value = cell.get(metric)
    if value is None:
        return "-"
    if metric == "fvd":
        return f"{value:.2f} ({cell.get('fvd_n')})"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def result_files(directory: Path) -> list[Path]:
    """``*.json`` files of a folder and of its direct sub-folders (one folder per submission)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"submissions folder {directory} does not exist")
    files = sorted(directory.glob("*.json")) + sorted(directory.glob("*/*.json"))
    return [f for f in files if not f.name.startswith(".")]


def build_leaderboard(
    directory: str | Path,
    *,
    rank_by: str = "ssim",
    difficulty: str = "all",
    subset: str = "all",
    allow_partial: bool = False,
) -> Leaderboard:
    if rank_by not in METRICS:
        raise ValueError(f"rank_by {rank_by!r}, expected one of {list(METRICS)}")
    if (difficulty, subset) not in TABLE_ROWS:
        raise ValueError(f"no table cell {difficulty!r} x {subset!r}")
    entries, rejected, names = [], [], set()
    for path in result_files(Path(directory)):
        try:
            results = BenchmarkResults.load(path)
        except ValueError as error:
            rejected.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        if not results.complete and not allow_partial:
            rejected.append((path, f"incomplete ({results.status_line()}); pass --allow-partial to show it"))
            continue
        value = results.row(difficulty, subset).get(rank_by)
        if value is None or not math.isfinite(value):
            rejected.append((path, f"no {METRIC_LABELS[rank_by]} value for {difficulty} / {subset}"))
            continue
        name = results.model or path.stem
        if name in names:
            name = f"{name} ({path.stem})"
        names.add(name)
        entries.append(Entry(name, path, results))
    entries = _same_test_set(entries, rejected)

    def key(entry: Entry):
        cell = entry.results.row(difficulty, subset)
        sign = -1.0 if METRICS[rank_by] else 1.0
        tie = cell.get("psnr") if rank_by != "psnr" else cell.get("ssim")
        return (entry.partial, sign * cell[rank_by], -(tie or 0.0), entry.name)

    entries.sort(key=key)
    return Leaderboard(entries, rejected, rank_by, difficulty, subset)


def _test_set(entry: Entry) -> tuple[str, int]:
    return entry.results.config, entry.results.num_expected


def _same_test_set(entries: list[Entry], rejected: list) -> list[Entry]:
    """Keep the entries scored on the most common test set (config, number of test clips); reject others."""
    if not entries:
        return entries
    reference = Counter(_test_set(e) for e in entries).most_common(1)[0][0]  # ties: the first file's
    for entry in entries:
        if _test_set(entry) != reference:
            config, count = _test_set(entry)
            reason = (
                f"scored on another test set (config {config!r}, {count} clips) than the other entries "
                f"(config {reference[0]!r}, {reference[1]} clips)"
            )
            rejected.append((entry.path, reason))
    return [e for e in entries if _test_set(e) == reference]


def write_leaderboard(board: Leaderboard, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (``.md`` or ``.html``) and the plot beside it (same name, ``.png``)."""
    out = Path(out)
    if out.suffix.lower() in (".html", ".htm"):
        text = board.html()
    elif out.suffix.lower() in (".md", ".markdown"):
        text = board.markdown()
    else:
        raise ValueError(f"leaderboard output {out} must end in .md or .html")
    atomic_write_text(out, text)
    return out, board.plot(out.with_suffix(".png"))

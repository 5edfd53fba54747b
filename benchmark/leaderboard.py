"""``mit-bench leaderboard``: check or re-score every submission, rank them, render markdown or HTML and a plot.

A submissions folder holds, per entry, one of:

- a **predictions folder** (a sub-folder with ``<clip_id>.mp4`` files) or a **zip/tar archive** of one: re-scored
  here against ``--dataset`` (:func:`benchmark.scoring.evaluate_submission`), so every number is computed by this
  command: the entry is **verified**. Archives are unpacked by :func:`benchmark.archives.extract_submission`
  (no path traversal, no links, size and member limits, only the expected clip names);
- a **results file** (``*.json``, at the top or in a sub-folder without clips): taken as **self-reported**, after
  :func:`benchmark.integrity.check_results_dict` (types, value ranges, every table cell and ``n`` recomputed
  from ``per_clip``) and, with ``--dataset``, :func:`~benchmark.integrity.check_against_test_set` (same
  test-split fingerprint, clips of that split). Without ``--dataset``, entries must share the test-set
  fingerprint most of them have.

Anything that fails is rejected with its reason, naming the file and field. Entries are ranked on one Table 2
cell (all test clips by default) by one metric (SSIM by default; PSNR then breaks ties); incomplete results are
rejected unless ``allow_partial``. Everything a submitter wrote (model names, file names, reasons quoting their
values) is escaped for its medium (:mod:`benchmark.escaping`). :func:`write_leaderboard` renders the page and the
plot in memory first and then writes both atomically, so a failure leaves no partial output.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mit_dataset.atomic import atomic_path, remove_stale_temporaries, work_folder
from mit_dataset.safe_names import child_path

from .archives import ArchiveError, ExtractionLimits, archive_stem, extract_submission, is_archive
from .escaping import html_text, markdown_text, plain_text
from .protocol import PAPER_EVALUATION_SIZE
from .scoring import METRIC_LABELS, METRICS, SUBSET_LABELS, TABLE_ROWS, BenchmarkResults
from .submission import PREDICTION_SUFFIXES

#: Results files larger than this are refused unread (a real one is a few hundred kB per 1000 clips).
MAX_RESULTS_BYTES = 64 * 2**20

Escape = Callable[[object], str]
SCORES_NOTE = (
    "Verified: re-scored by mit-bench leaderboard from the submitted predictions. Self-reported: a results file, "
    "checked for consistency (every table cell recomputed from its per-clip values), not re-scored."
)


@dataclass
class Entry:
    name: str
    path: Path
    results: BenchmarkResults
    verified: bool = False  # re-scored here from its predictions (else: a self-reported results file)

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
    reference: str = ""  # how the test set was fixed: the dataset's fingerprint, or the majority's
    remarks: list[str] = field(default_factory=list)

    def cell(self, entry: Entry) -> dict:
        return entry.results.row(self.difficulty, self.subset)

    @property
    def metrics(self) -> list[str]:
        present = {m for e in self.entries for m in e.results.metrics}
        return [m for m in METRICS if m in present]

    def header(self) -> list[str]:
        labels = [METRIC_LABELS[m] + (" ↑" if METRICS[m] else " ↓") for m in self.metrics]
        return ["Rank", "Model", "N", *labels, "Status", "Scores"]

    def rows(self, escape: Escape) -> list[list[str]]:
        rows = []
        for rank, entry in enumerate(self.entries, start=1):
            cell = self.cell(entry)
            values = [_format(m, cell) for m in self.metrics]
            status = "PARTIAL" if entry.partial else "complete"
            scores = "verified" if entry.verified else "self-reported"
            rows.append([str(rank), escape(entry.name), str(cell["n"]), *values, status, scores])
        return rows

    def notes(self, escape: Escape) -> list[str]:
        cell = f"{self.difficulty} / {SUBSET_LABELS[self.subset]}"
        notes = [
            f"Ranked by {METRIC_LABELS[self.rank_by]} on the {cell} test clips.",
            SCORES_NOTE,
        ]
        if self.reference:
            notes.append(escape(self.reference))
        fvd_ns = {self.cell(e).get("fvd_n") for e in self.entries if self.cell(e).get("fvd") is not None}
        if len(fvd_ns) > 1:
            notes.append(f"FVD values were computed at different N ({sorted(fvd_ns)}): do not compare them.")
        for entry in self.entries:
            if "fvd" in entry.results.skipped:
                notes.append(f"{escape(entry.name)}: FVD skipped ({escape(entry.results.skipped['fvd'])}).")
            if entry.partial:
                notes.append(
                    f"{escape(entry.name)}: PARTIAL results ({escape(entry.results.status_line())})."
                )
        notes += [escape(remark) for remark in self.remarks]
        for path, reason in self.rejected:
            notes.append(f"Rejected {escape(path.name)}: {escape(reason)}")
        return notes

    def markdown(self) -> str:
        def escape(text):
            return markdown_text(text, max_chars=None)

        lines = ["# MIT benchmark leaderboard", ""]
        lines.append("| " + " | ".join(self.header()) + " |")
        lines.append(
            "|" + "|".join(["---:", "---", "---:"] + ["---:"] * len(self.metrics) + ["---", "---"]) + "|"
        )
        lines += ["| " + " | ".join(row) + " |" for row in self.rows(markdown_text)]
        lines.append("")
        lines += [f"- {note}" for note in self.notes(escape)]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        """The leaderboard as plain text for a terminal: aligned columns, one line per entry and note."""

        def escape(text):
            return plain_text(text, max_chars=None)

        table = [self.header(), *self.rows(plain_text)]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
        return (
            "\n".join(["MIT benchmark leaderboard", "", *lines, "", *(f"- {n}" for n in self.notes(escape))])
            + "\n"
        )

    def html(self) -> str:
        def escape(text):
            return html_text(text, max_chars=None)

        head = "".join(f"<th>{html_text(h)}</th>" for h in self.header())
        body = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in self.rows(html_text)
        )
        notes = "".join(f"<li>{n}</li>" for n in self.notes(escape))
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>MIT benchmark leaderboard</title>'
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}</style>"
            f"</head><body>\n<h1>MIT benchmark leaderboard</h1>\n<table><thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}</tbody></table>\n<ul>{notes}</ul>\n</body></html>\n"
        )


def _format(metric: str, cell: dict) -> str:
    value = cell.get(metric)
    if value is None:
        return "-"
    if metric == "fvd":
        return f"{value:.2f} ({cell.get('fvd_n')})"
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


# ------------------------------------------------------------------------------------------------- inputs


def _has_predictions(folder: Path) -> bool:
    return any(
        p.suffix.lower() in PREDICTION_SUFFIXES for p in folder.iterdir() if not p.name.startswith(".")
    )


def find_submissions(directory: Path) -> tuple[list[Path], list[Path]]:
    """``(results files, prediction sources)`` of a submissions folder: ``*.json`` at the top and in sub-folders
    without clips; sub-folders with clips and archives at the top. Hidden names are skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"submissions folder {directory} does not exist")
    results, predictions = [], []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir() and not path.is_symlink():
            if _has_predictions(path):
                predictions.append(path)
            else:
                results += sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
        elif path.suffix.lower() == ".json":
            results.append(path)
        elif is_archive(path):
            predictions.append(path)
    return results, predictions


def load_results_file(path: Path) -> BenchmarkResults:
    """A self-reported results file, fully checked; ``ValueError`` naming the file and field otherwise."""
    if path.is_symlink() or not path.is_file():
        raise ValueError("not a regular file")
    if path.stat().st_size > MAX_RESULTS_BYTES:
        raise ValueError(f"larger than {MAX_RESULTS_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"not a readable results JSON ({error})") from error
    return BenchmarkResults.from_dict(data)


@dataclass
class TestSet:
    """The dataset submissions are re-scored and checked against."""

    dataset: object
    config: str | None
    cache_dir: str | None
    split: object = None
    specs: list = field(default_factory=list)
    fingerprint: dict = field(default_factory=dict)

    def load(self) -> TestSet:
        from .fingerprint import fingerprint_test_split
        from .submission import clip_specs, load_test_split

        self.split = load_test_split(self.dataset, self.config, cache_dir=self.cache_dir)
        self.specs = clip_specs(self.split)
        self.fingerprint = fingerprint_test_split(self.split)
        return self


def _rescore(
    source: Path, test: TestSet, work: Path, scoring: dict, limits: ExtractionLimits | None
) -> BenchmarkResults:
    from .scoring import evaluate_submission

    if source.is_dir():
        links = sorted(p.name for p in source.iterdir() if p.is_symlink())
        if links:
            raise ValueError(
                f"predictions folder holds links ({', '.join(links[:3])}): submit the files themselves"
            )
        folder = source
    else:
        folder = extract_submission(
            source,
            child_path(work, archive_stem(source), ".predictions", what="archive name"),
            [s.clip_id for s in test.specs],
            limits
            or ExtractionLimits.for_clips(
                test.specs, scoring.get("evaluation_size") or PAPER_EVALUATION_SIZE
            ),
        )
    results, _ = evaluate_submission(test.split, folder, config=test.config, progress=False, **scoring)
    return results


# ------------------------------------------------------------------------------------------------ ranking


def build_leaderboard(
    directory: str | Path,
    *,
    rank_by: str = "ssim",
    difficulty: str = "all",
    subset: str = "all",
    allow_partial: bool = False,
    verified_only: bool = False,
    dataset=None,
    config: str | None = None,
    cache_dir: str | None = None,
    scoring: dict | None = None,
    limits: ExtractionLimits | None = None,
    work_dir: str | Path | None = None,
) -> Leaderboard:
    """Check or re-score every submission of ``directory`` and rank them (see the module docstring).

    ``dataset`` (folder, Hub id or ``datasets.Dataset``): the test split prediction submissions are re-scored on
    and every results file is checked against; ``scoring``: extra :func:`evaluate_submission` arguments for the
    re-scoring (``metrics``, ``i3d_path``, ``trust_detector``, ``state``, ``evaluation_size``); archives are
    unpacked under ``work_dir`` (default: ``directory``) into a temporary folder removed at the end, within
    ``limits`` (default: :meth:`ExtractionLimits.for_clips` of the test split at the evaluation size).
    """
    if rank_by not in METRICS:
        raise ValueError(f"rank_by {rank_by!r}, expected one of {list(METRICS)}")
    if (difficulty, subset) not in TABLE_ROWS:
        raise ValueError(f"no table cell {difficulty!r} x {subset!r}")
    results_files, prediction_sources = find_submissions(Path(directory))
    test = TestSet(dataset, config, cache_dir).load() if dataset is not None else None
    candidates, rejected = [], []
    for path in results_files:
        try:
            results = load_results_file(path)
            if test is not None:
                from .integrity import check_against_test_set

                check_against_test_set(results.to_dict(), test.fingerprint, test.specs)
        except ValueError as error:
            rejected.append((path, str(error)))
            continue
        candidates.append(Entry(results.model or path.stem, path, results, verified=False))
    if prediction_sources and test is None:
        rejected += [
            (p, "predictions are re-scored against the dataset: pass --dataset") for p in prediction_sources
        ]
    elif prediction_sources:
        with work_folder(Path(work_dir or directory) / "leaderboard.work") as work:
            for source in prediction_sources:
                try:
                    results = _rescore(source, test, work, dict(scoring or {}), limits)
                except (ValueError, ArchiveError, FileNotFoundError) as error:
                    rejected.append((source, str(error)))
                    continue
                name = archive_stem(source) if source.is_file() else source.name
                candidates.append(Entry(name, source, results, verified=True))
    board = Leaderboard([], rejected, rank_by, difficulty, subset)
    if test is not None:
        board.reference = (
            f"Test set: {len(test.specs)} clips, fingerprint {test.fingerprint['fingerprint'][:16]} "
            f"(dataset {test.dataset if isinstance(test.dataset, (str, Path)) else 'given'})."
        )
    else:
        candidates = _same_test_set(candidates, rejected, board)
    candidates = _same_evaluation_size(candidates, rejected)
    board.entries = _ranked(_eligible(candidates, rejected, board, allow_partial, verified_only), board)
    return board


def _same_evaluation_size(entries: list[Entry], rejected: list) -> list[Entry]:
    """Keep the entries scored at the evaluation size most entries share (:mod:`benchmark.protocol`): values
    at different sizes are not comparable; reject the others."""
    if not entries:
        return entries
    reference, _ = Counter(e.results.evaluation_size for e in entries).most_common(1)[0]
    for entry in entries:
        if entry.results.evaluation_size != reference:
            rejected.append(
                (
                    entry.path,
                    f"scored at evaluation size {entry.results.evaluation_size}, the other entries at {reference}",
                )
            )
    return [e for e in entries if e.results.evaluation_size == reference]


def _eligible(
    candidates, rejected, board: Leaderboard, allow_partial: bool, verified_only: bool
) -> list[Entry]:
    entries, names = [], set()
    for entry in candidates:
        results = entry.results
        if verified_only and not entry.verified:
            rejected.append(
                (entry.path, "self-reported results file (--verified-only shows re-scored entries only)")
            )
            continue
        if not results.complete and not allow_partial:
            rejected.append(
                (entry.path, f"incomplete ({results.status_line()}); pass --allow-partial to show it")
            )
            continue
        value = results.row(board.difficulty, board.subset).get(board.rank_by)
        if value is None or not math.isfinite(value):
            label = METRIC_LABELS[board.rank_by]
            rejected.append((entry.path, f"no {label} value for {board.difficulty} / {board.subset}"))
            continue
        if entry.name in names:
            entry.name = f"{entry.name} ({entry.path.name})"
        names.add(entry.name)
        entries.append(entry)
    return entries


def _ranked(entries: list[Entry], board: Leaderboard) -> list[Entry]:
    def key(entry: Entry):
        cell = entry.results.row(board.difficulty, board.subset)
        sign = -1.0 if METRICS[board.rank_by] else 1.0
        tie = cell.get("psnr") if board.rank_by != "psnr" else cell.get("ssim")
        return (entry.partial, sign * cell[board.rank_by], -(tie or 0.0), entry.name)

    return sorted(entries, key=key)


def _same_test_set(entries: list[Entry], rejected: list, board: Leaderboard) -> list[Entry]:
    """Without a dataset: keep the entries whose test-set fingerprint most entries share; reject the others."""
    kept = []
    for entry in entries:
        if entry.results.test_set.get("fingerprint"):
            kept.append(entry)
        else:
            rejected.append(
                (entry.path, "no test-set fingerprint (field 'test_set'): re-run mit-bench evaluate")
            )
    if not kept:
        return kept
    counts = Counter(e.results.test_set["fingerprint"] for e in kept)
    reference, _ = counts.most_common(1)[0]  # ties: the first file's
    board.reference = (
        f"Test set: fingerprint {reference[:16]}, shared by {counts[reference]} of {len(kept)} entries "
        "(pass --dataset to check every entry against the dataset itself)."
    )
    for entry in kept:
        if entry.results.test_set["fingerprint"] != reference:
            rejected.append(
                (
                    entry.path,
                    f"scored on another test set (fingerprint {entry.results.test_set['fingerprint'][:16]})",
                )
            )
    return [e for e in kept if e.results.test_set["fingerprint"] == reference]


# ------------------------------------------------------------------------------------------------- output


def write_leaderboard(board: Leaderboard, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (``.md`` or ``.html``) and the plot beside it (same name, ``.png``): both are rendered in
    memory first, then written atomically, so an error leaves neither behind."""
    from .leaderboard_plot import render_png

    out = Path(out)
    if out.suffix.lower() in (".html", ".htm"):
        text = board.html()
    elif out.suffix.lower() in (".md", ".markdown"):
        text = board.markdown()
    else:
        raise ValueError(f"leaderboard output {out} must end in .md or .html")
    png = render_png(board)
    plot = out.with_suffix(".png")
    remove_stale_temporaries(out.parent)
    with atomic_path(out) as page_tmp, atomic_path(plot) as plot_tmp:
        page_tmp.write_text(text, encoding="utf-8")
        plot_tmp.write_bytes(png)
    return out, plot

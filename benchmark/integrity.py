"""Results files are self-reported: check every field, recompute every number that can be recomputed.

A results file (``mit-bench evaluate --out``) is written by whoever submits it, so nothing in it is taken on
trust. :func:`check_results_dict` (what :meth:`BenchmarkResults.from_dict` runs) rejects, naming the field:

- a malformed structure: wrong types (``model`` an int, a metric name that is not a string, a string where a
  number belongs), missing fields (a table row without ``n``), unknown metrics, duplicate clips;
- values out of range: SSIM and speaker sync in [-1, 1], PSNR in [0, :data:`PSNR_MAX_DB`] dB (per-frame PSNR is
  clamped there), FVD finite and >= 0, NaN or infinity anywhere;
- a table that does not follow from ``per_clip``: every Table 2 cell's ``n``, mean SSIM / PSNR / speaker sync,
  ``speaker_sync_n`` and ``fvd_n`` (16-frame windows of the cell's clips) is recomputed and must agree to
  :data:`RELATIVE_TOLERANCE`; ``num_scored`` and ``complete`` must follow from the clip lists.

What cannot be recomputed from the file is the FVD itself (a statistic of I3D features) and the per-clip values
(they need the predictions): only re-scoring a submission (``mit-bench leaderboard`` on prediction folders or
archives) verifies those. :func:`check_against_test_set` then ties a results file to one test split: same
fingerprint (:mod:`benchmark.fingerprint`), clips of that split with their subset, difficulty and length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mit_dataset.features import DIFFICULTIES, SUBSETS

from .protocol import EvaluationSize
from .scoring import METRICS, PSNR_MAX_DB, RESULTS_FORMAT, TABLE_ROWS

#: Relative (and absolute) tolerance when a table cell is recomputed from ``per_clip`` (JSON keeps float64).
RELATIVE_TOLERANCE = 1e-9
#: Inclusive value range of each metric.
VALUE_RANGES = {
    "ssim": (-1.0, 1.0),
    "psnr": (0.0, PSNR_MAX_DB),
    "speaker_sync": (-1.0, 1.0),
    "fvd": (0.0, math.inf),
}
#: Frames per FVD window (``benchmark.fvd.CLIP_LEN``; not imported to keep torch out of this check).
FVD_WINDOW = 16


class ResultsError(ValueError):
    """A results file that is malformed, out of range or inconsistent; the message names the field."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(data: dict, key: str, kind, where: str = "field"):
    value = data.get(key)
    if not (_is_int(value) if kind is int else isinstance(value, kind)):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        got = "missing" if key not in data else f"{type(value).__name__} {_short(value)}"
        raise ResultsError(f"{where} {key!r} must be a {name}, got {got}")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_value(metric: str, value, where: str) -> None:
    """``value`` is ``None`` or a finite number in the metric's range; else :class:`ResultsError`."""
    if value is None:
        return
    if not _is_number(value):
        raise ResultsError(f"{where}: {metric} is {_short(value)}, expected a number")
    low, high = VALUE_RANGES[metric]
    if not math.isfinite(value) or not low <= value <= high:
        raise ResultsError(f"{where}: {metric} is {value!r}, outside [{low:g}, {high:g}]")


def _check_header(data) -> list[str]:
    if not isinstance(data, dict):
        raise ResultsError(f"results file is not a JSON object (got {type(data).__name__})")
    if data.get("format") != RESULTS_FORMAT:
        hint = (
            " (scored before evaluation sizes were recorded: evaluate again)"
            if data.get("format") == ("mit-bench-results/1")
            else ""
        )
        raise ResultsError(
            f"field 'format' is {_short(data.get('format'))}, expected {RESULTS_FORMAT!r}{hint}"
        )
    try:
        EvaluationSize.from_dict(data.get("evaluation_size"))
    except ValueError as error:
        raise ResultsError(f"field 'evaluation_size': {error}") from None
    for key, kind in {"dataset": str, "config": str, "num_expected": int, "num_scored": int, "complete": bool,
                      "metrics": list, "skipped": dict, "conventions": dict, "problems": list, "table": list,
                      "per_clip": list}.items():  # fmt: skip
        _require(data, key, kind)
    for key in ("model", "predictions_dir", "created"):
        if key in data and not isinstance(data[key], str):
            raise ResultsError(
                f"field {key!r} must be a string, got {type(data[key]).__name__} {_short(data[key])}"
            )
    metrics = data["metrics"]
    for metric in metrics:
        if not isinstance(metric, str) or metric not in METRICS:
            raise ResultsError(
                f"field 'metrics' has {_short(metric)}, expected metric names from {list(METRICS)}"
            )
    if len(set(metrics)) != len(metrics):
        raise ResultsError(f"field 'metrics' lists a metric twice: {metrics}")
    for key in ("skipped", "conventions"):
        for name, text in data[key].items():
            if not isinstance(text, str):
                raise ResultsError(
                    f"field {key!r}: entry {name!r} must be a string, got {type(text).__name__}"
                )
    if data["num_expected"] < 0:
        raise ResultsError(f"field 'num_expected' is {data['num_expected']}, expected >= 0")
    return metrics


def _check_clips(per_clip: list, metrics: Sequence[str]) -> None:
    seen = set()
    for index, clip in enumerate(per_clip):
        where = f"per_clip[{index}]"
        if not isinstance(clip, dict):
            raise ResultsError(f"{where} must be an object, got {type(clip).__name__}")
        clip_id = _require(clip, "clip_id", str, f"{where} field")
        where = f"per_clip[{index}] (clip {clip_id!r})"
        if clip_id in seen:
            raise ResultsError(f"{where}: clip scored twice")
        seen.add(clip_id)
        if clip.get("subset") not in SUBSETS or clip.get("difficulty") not in DIFFICULTIES:
            raise ResultsError(
                f"{where}: subset {_short(clip.get('subset'))} / difficulty {_short(clip.get('difficulty'))}, "
                f"expected one of {SUBSETS} / {DIFFICULTIES}"
            )
        if not _is_int(clip.get("num_frames")) or clip["num_frames"] <= 0:
            raise ResultsError(
                f"{where}: num_frames is {_short(clip.get('num_frames'))}, expected an integer > 0"
            )
        for metric in metrics:
            if metric == "fvd":
                continue
            if metric != "speaker_sync" and clip.get(metric) is None:
                raise ResultsError(f"{where}: {metric} is missing")
            check_value(metric, clip.get(metric), where)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE, abs_tol=RELATIVE_TOLERANCE)


def _check_table(table: list, per_clip: list, metrics: Sequence[str]) -> None:
    cells = {}
    for index, row in enumerate(table):
        if not isinstance(row, dict):
            raise ResultsError(f"table[{index}] must be an object, got {type(row).__name__}")
        key = (row.get("difficulty"), row.get("subset"))
        if key not in TABLE_ROWS or key in cells:
            raise ResultsError(
                f"field 'table' must have exactly the rows {list(TABLE_ROWS)} (table[{index}] is {key})"
            )
        cells[key] = row
    if len(cells) != len(TABLE_ROWS):
        raise ResultsError(f"field 'table' must have exactly the rows {list(TABLE_ROWS)}")
    for (difficulty, subset), row in cells.items():
        where = f"table row {difficulty}/{subset}"
        clips = [
            c for c in per_clip if difficulty in ("all", c["difficulty"]) and subset in ("all", c["subset"])
        ]
        _expect_count(row, "n", len(clips), where)
        for metric in metrics:
            value = row.get(metric)
            check_value(metric, value, where)
            if metric == "fvd":
                windows = sum(c["num_frames"] // FVD_WINDOW for c in clips)
                _expect_count(row, "fvd_n", windows, where)
                if value is None and windows >= 2:
                    raise ResultsError(f"{where}: fvd is missing although fvd_n is {windows}")
                continue
            values = [c[metric] for c in clips if c.get(metric) is not None]
            if metric == "speaker_sync":
                _expect_count(row, "speaker_sync_n", len(values), where)
            expected = float(np.mean(values)) if values else None
            if (value is None) != (expected is None) or (value is not None and not _close(value, expected)):
                raise ResultsError(
                    f"{where}: {metric} is {_short(value)} but the mean of its {len(values)} per-clip values is "
                    f"{expected!r}"
                )


def _expect_count(row: dict, key: str, expected: int, where: str) -> None:
    value = row.get(key)
    if not _is_int(value):
        raise ResultsError(f"{where}: field {key!r} is {'missing' if key not in row else _short(value)}, "
                           "expected an integer")  # fmt: skip
    if value != expected:
        raise ResultsError(f"{where}: {key} is {value} but per_clip gives {expected}")


def check_results_dict(data) -> None:
    """Raise :class:`ResultsError` naming the first field that makes ``data`` not a valid, self-consistent
    results file (see the module docstring)."""
    metrics = _check_header(data)
    per_clip = data["per_clip"]
    _check_clips(per_clip, metrics)
    _check_table(data["table"], per_clip, metrics)
    if data["num_scored"] != len(per_clip):
        raise ResultsError(f"field 'num_scored' is {data['num_scored']} but 'per_clip' has {len(per_clip)}")
    if data["num_scored"] > data["num_expected"]:
        raise ResultsError(
            f"field 'num_scored' is {data['num_scored']} but only {data['num_expected']} are expected"
        )
    if data["complete"] != (data["num_scored"] == data["num_expected"]):
        raise ResultsError(
            f"field 'complete' is {data['complete']} but {data['num_scored']}/{data['num_expected']} clips were "
            "scored"
        )
    test_set = data.get("test_set")
    if test_set is not None:
        if not isinstance(test_set, dict) or not isinstance(test_set.get("fingerprint"), str):
            raise ResultsError("field 'test_set' must be an object with a 'fingerprint' string")
        if test_set.get("num_clips") != data["num_expected"]:
            raise ResultsError(
                f"field 'test_set' says {_short(test_set.get('num_clips'))} clips but 'num_expected' is "
                f"{data['num_expected']}"
            )


def check_against_test_set(data: dict, fingerprint: dict, specs) -> None:
    """A checked results dict was scored on the test split with ``fingerprint`` (:mod:`benchmark.fingerprint`)
    whose clips are ``specs`` (:class:`benchmark.submission.ClipSpec`); else :class:`ResultsError`."""
    given = (data.get("test_set") or {}).get("fingerprint")
    if given is None:
        raise ResultsError(
            "no test-set fingerprint (field 'test_set'): re-run mit-bench evaluate to record one"
        )
    if given != fingerprint["fingerprint"]:
        raise ResultsError(
            f"scored on another test set (fingerprint {given[:12]}..., this dataset's is "
            f"{fingerprint['fingerprint'][:12]}...)"
        )
    by_id = {spec.clip_id: spec for spec in specs}
    for clip in data["per_clip"]:
        spec = by_id.get(clip["clip_id"])
        if spec is None:
            raise ResultsError(f"per_clip: clip {clip['clip_id']!r} is not a test clip of this dataset")
        if (clip["subset"], clip["difficulty"], clip["num_frames"]) != (
            spec.subset,
            spec.difficulty,
            spec.num_frames,
        ):
            raise ResultsError(
                f"per_clip: clip {clip['clip_id']!r} is {clip['subset']}/{clip['difficulty']}/{clip['num_frames']} "
                f"frames, the dataset says {spec.subset}/{spec.difficulty}/{spec.num_frames}"
            )

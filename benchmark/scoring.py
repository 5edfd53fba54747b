"""The MIT benchmark runner: score a validated submission against the test split, per clip and per
Table 2 cell (easy / challenging / all x two-human / multi-human / all), with ``accelerate`` spreading the
clips over processes.

Every clip is scored at the evaluation size (:mod:`benchmark.protocol`, 640x384 by default): the ground truth
is decoded straight to it through the cover transform (FFmpeg scaling, as the training view does), a
prediction at the clip's own size the same way, and speaker sync's face boxes follow the same transform. The
size is recorded in the results (``evaluation_size``).

Every process validates the submission (cheap), scores its share of the clips
(``PartialState.split_between_processes``), and the per-clip values and I3D features are gathered
(``gather_object``) so that every process ends with the same :class:`BenchmarkResults`; only the main
process should write files. One process gives the same numbers as many (tests/benchmark/test_distributed.py).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mit_dataset.atomic import atomic_write_text
from mit_dataset.distributed import distributed_state

from .fingerprint import fingerprint_test_split
from .protocol import PAPER_EVALUATION_SIZE, EvaluationSize
from .submission import (
    DECODE_CHUNK_FRAMES,
    ClipSpec,
    Problem,
    ValidationReport,
    clip_specs,
    find_predictions,
    load_test_split,
    read_prediction,
)
from .video_loading import iter_frame_chunks

#: Version 2 added ``evaluation_size``; version 1 files were scored at each clip's own size.
RESULTS_FORMAT = "mit-bench-results/2"

#: Table 2 rows: test difficulty x subset, with "all" unions (the paper's table is the first two blocks).
DIFFICULTY_ROWS = ("easy", "challenging", "all")
SUBSET_ROWS = ("two_human", "multi_human", "all")
TABLE_ROWS = tuple((d, s) for d in DIFFICULTY_ROWS for s in SUBSET_ROWS)

#: Metric name -> whether higher is better.
METRICS = {"ssim": True, "psnr": True, "fvd": False, "speaker_sync": True, "vbench_consistency": True}
METRIC_LABELS = {
    "ssim": "SSIM",
    "psnr": "PSNR",
    "fvd": "FVD",
    "speaker_sync": "Speaker sync",
    "vbench_consistency": "Consistency",
}
#: The feature model folder of ``vbench_consistency`` when ``--consistency-model`` is not given.
CONSISTENCY_MODEL_ENV = "MIT_BENCH_CONSISTENCY_MODEL"

SUBSET_LABELS = {"two_human": "two-human", "multi_human": "multi-human", "all": "all"}


@dataclass
class BenchmarkResults:
    """Per-clip values, the Table 2 cells and everything needed to read them correctly."""

    dataset: str
    config: str
    predictions_dir: str
    num_expected: int
    per_clip: list[dict]
    table: list[dict]
    metrics: list[str]
    skipped: dict[str, str]
    conventions: dict[str, str]
    problems: list[dict]
    model: str = ""
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    test_set: dict = field(default_factory=dict)  # benchmark.fingerprint: which test split this was scored on

    @property
    def num_scored(self) -> int:
        return len(self.per_clip)

    @property
    def complete(self) -> bool:
        """Every test clip scored. (Each problem but an extra file leaves its clip unscored.)"""
        return self.num_scored == self.num_expected

    def row(self, difficulty: str = "all", subset: str = "all") -> dict:
        for row in self.table:
            if (row["difficulty"], row["subset"]) == (difficulty, subset):
                return row
        raise KeyError(f"no table row {difficulty!r} x {subset!r}")

    def to_dict(self) -> dict:
        return {
            "format": RESULTS_FORMAT,
            "model": self.model,
            "dataset": self.dataset,
            "config": self.config,
            "evaluation_size": self.evaluation_size.to_dict(),
            "predictions_dir": self.predictions_dir,
            "created": self.created,
            "complete": self.complete,
            "num_expected": self.num_expected,
            "num_scored": self.num_scored,
            "metrics": list(self.metrics),
            "skipped": dict(self.skipped),
            "conventions": dict(self.conventions),
            "problems": list(self.problems),
            "test_set": dict(self.test_set),
            "table": [_json_safe(row) for row in self.table],
            "per_clip": [_json_safe(row) for row in self.per_clip],
        }

    @classmethod
    def from_dict(cls, data: dict) -> BenchmarkResults:
        """Results from a parsed results file, after :func:`benchmark.integrity.check_results_dict` (every field
        checked, every table cell recomputed from ``per_clip``; ``ResultsError`` names what is wrong)."""
        from .integrity import check_results_dict

        check_results_dict(data)
        return cls(
            dataset=data["dataset"],
            config=data["config"],
            predictions_dir=data.get("predictions_dir", ""),
            num_expected=data["num_expected"],
            per_clip=data["per_clip"],
            table=data["table"],
            metrics=data["metrics"],
            skipped=data["skipped"],
            conventions=data["conventions"],
            problems=data["problems"],
            model=data.get("model", ""),
            evaluation_size=EvaluationSize.from_dict(data["evaluation_size"]),
            created=data.get("created", ""),
            test_set=data.get("test_set") or {},
        )

    def write_json(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> BenchmarkResults:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable results JSON ({error})") from error
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def status_line(self) -> str:
        if self.complete:
            extra = f", {len(self.problems)} extra file(s) ignored" if self.problems else ""
            return f"complete: {self.num_scored}/{self.num_expected} test clips scored{extra}"
        return (
            f"INCOMPLETE: {self.num_scored}/{self.num_expected} test clips scored, {len(self.problems)} "
            "problem(s); these numbers are not comparable with complete results"
        )

    def markdown(self) -> str:
        """The Table 2 layout as a markdown table, with the status and skipped metrics said above it."""
        columns = [m for m in METRICS if m in self.metrics]
        header = ["Test set", "Subset", "N"] + [
            METRIC_LABELS[m] + (" ↑" if METRICS[m] else " ↓") for m in columns
        ]
        lines = [
            f"**{self.model or 'submission'}** on MIT test at {self.evaluation_size} ({self.status_line()})",
            "",
        ]
        for name, reason in self.skipped.items():
            lines.append(f"- {METRIC_LABELS.get(name, name)} skipped: {reason}")
        if self.skipped:
            lines.append("")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|")
        for row in self.table:
            cells = [row["difficulty"], SUBSET_LABELS[row["subset"]], str(row["n"])]
            cells += [_format_value(m, row) for m in columns]
            lines.append("| " + " | ".join(cells) + " |")
        if "fvd" in columns:
            lines += ["", "FVD (N) = Frechet distance over N I3D feature vectors; compare only at equal N."]
        return "\n".join(lines)


def _format_value(metric: str, row: dict) -> str:
    value = row.get(metric)
    if value is None:
        return "-"
    if metric == "fvd":
        return f"{value:.2f} ({row.get('fvd_n', '?')})"
    if metric == "psnr":
        return f"{value:.2f}"
    return f"{value:.4f}"


def _json_safe(row: dict) -> dict:
    """Floats as plain Python floats; numpy scalars converted (``json`` refuses them)."""
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


# --------------------------------------------------------------------------------------------- metrics


class ClipScorer:
    """Per-clip metric values and I3D features (the FVD is a set statistic, computed per table cell), of
    frames at ``evaluation_size``."""

    def __init__(
        self,
        metrics=("ssim", "psnr", "speaker_sync", "fvd"),
        i3d_path=None,
        device="cpu",
        trust_detector=False,
        consistency_model=None,
        evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
    ):
        self.metrics = [m for m in METRICS if m in metrics]
        self.device = device
        self.evaluation_size = evaluation_size
        self.i3d = None
        self.detector_name = ""
        self.consistency = None
        if "fvd" in self.metrics:
            self.i3d = _load_i3d(i3d_path, device, trust_detector)
            described = self.i3d.describe()
            self.detector_name = f"{described['name']}, {described['kind']}, sha256 {described['sha256']}"
        if "vbench_consistency" in self.metrics:
            from .consistency import FrameFeatureExtractor

            self.consistency = FrameFeatureExtractor(consistency_model, device=device)

    def score(self, prediction: np.ndarray, target: np.ndarray, row: dict) -> tuple[dict, dict]:
        """``prediction``: ``(F, H, W, 3)`` uint8 or float in [0, 1]; ``target``: uint8. Returns
        ``(values, features)``."""
        values, features = {}, {}
        frame_metrics = [m for m in ("ssim", "psnr") if m in self.metrics]
        values.update(_frame_metrics(prediction, target, frame_metrics, self.device))
        if "speaker_sync" in self.metrics:
            values["speaker_sync"] = _speaker_sync(prediction, row)
        if self.consistency is not None:
            from .consistency import video_consistency

            values["vbench_consistency"] = video_consistency(prediction, self.consistency)
        if self.i3d is not None:
            features["fake"] = _i3d_features(self.i3d, prediction)
            features["real"] = _i3d_features(self.i3d, target)
        return values, features


#: Per-frame PSNR is clamped here: identical frames (MSE 0) would give inf and one such frame would make the
#: clip's mean inf. 100 dB is the usual stand-in ("if mse == 0: return 100").
PSNR_MAX_DB = 100.0


def _frame_metrics(prediction: np.ndarray, target: np.ndarray, names, device="cpu") -> dict:
    """Mean over frames of per-frame PSNR (clamped at :data:`PSNR_MAX_DB`) and SSIM."""
    from .video_metrics import score_video_pair

    if not names:
        return {}
    data_range = 1.0 if np.issubdtype(prediction.dtype, np.floating) else None
    if data_range is not None and target.dtype == np.uint8:
        target = target.astype(np.float32) / 255.0
    per_frame = score_video_pair(prediction, target, names, data_range=data_range, device=device)
    values = {}
    for name in names:
        frames = per_frame[name]
        if name == "psnr":
            frames = np.minimum(frames, PSNR_MAX_DB)
        values[name] = float(np.mean(frames))
    return values


def _speaker_sync(prediction: np.ndarray, row: dict) -> float | None:
    from . import speaker_sync

    return speaker_sync.clip_speaker_sync(prediction, row)


def _load_i3d(path, device, trust_detector=False):
    from .fvd import load_detector

    return load_detector(path, device=device, trust_detector=trust_detector)


def _i3d_features(detector, frames: np.ndarray) -> np.ndarray:
    """I3D features of the non-overlapping 16-frame windows of one clip; ``(0, D)`` for shorter clips."""
    from .fvd import CLIP_LEN, extract_video_features

    if len(frames) < CLIP_LEN:
        return np.zeros((0, 0))
    return extract_video_features([frames], detector)


def _frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    from .fvd import frechet_distance

    return float(frechet_distance(real, fake))


def metric_conventions(metrics, detector: str = "", consistency_model: str = "") -> dict[str, str]:
    conventions = {
        "ssim": "per frame, Gaussian window sigma 1.5 (11 taps), population covariance, per RGB channel then "
        "averaged, data range 255 (1 for float .npy predictions); mean over frames, then over clips "
        "(= skimage structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False))",
        "psnr": f"per frame 10 log10(R^2 / MSE) over all pixels and channels, R = 255 (1 for float .npy "
        f"predictions), clamped at {PSNR_MAX_DB:g} dB (identical frames); mean over frames, then over clips",
    }
    if "fvd" in metrics:
        conventions["fvd"] = (
            "I3D (Kinetics-400) features of every non-overlapping 16-frame window of each clip (frames resized "
            "to 224x224, scaled to [-1, 1]), Frechet distance of Gaussians fitted to real and generated "
            "features in float64, per table cell; N (fvd_n) = number of windows: compare only at equal N and "
            f"with the same detector ({detector})"
        )
    if "speaker_sync" in metrics:
        conventions["speaker_sync"] = (
            "per person, Pearson correlation over frames between mouth motion energy in the generated video "
            "(lower face box, head motion removed, 5-frame smoothing) and the dataset's speaking score; mean "
            "over persons with a defined value, then over clips (speaker_sync_n = clips with a value); "
            "no pretrained weights (benchmark/speaker_sync.py)"
        )
    if "vbench_consistency" in metrics:
        conventions["vbench_consistency"] = (
            "VBench temporal consistency of the generated video alone: mean over frames t >= 1 of "
            "(max(0, cos(f_t, f_t-1)) + max(0, cos(f_t, f_0))) / 2 with per-frame features f of a local image "
            f"model ({consistency_model}; DINO ViT-B/16 = subject, CLIP ViT-B/32 = background consistency); "
            "mean over clips (benchmark/consistency.py)"
        )
    return {k: v for k, v in conventions.items() if k in metrics}


# ---------------------------------------------------------------------------------------------- runner


def resolve_i3d(i3d_path) -> tuple[str | None, str | None]:
    """``(path, None)`` when an I3D file is given (argument, else ``$MIT_BENCH_I3D``), else ``(None, reason)``;
    a given file that does not exist raises ``FileNotFoundError`` (with what to download)."""
    from .fvd import DETECTOR_ENV, resolve_detector_path

    given = i3d_path or os.environ.get(DETECTOR_ENV)
    if not given:
        return None, f"no I3D file given (pass --i3d PATH or set ${DETECTOR_ENV})"
    return str(resolve_detector_path(given)), None


def _video_source(value: dict):
    """Bytes or path of an undecoded ``Video``/``Audio`` cell."""
    if value.get("bytes"):
        return value["bytes"]
    return value["path"]


def _score_one(scorer: ClipScorer, spec: ClipSpec, row: dict, path: Path):
    """``(record, features, problems)`` for one clip of a validated submission, both videos at the scorer's
    evaluation size; submission problems are returned, never raised."""
    size = scorer.evaluation_size
    prediction, problems = read_prediction(spec, path, size)  # the check validate runs
    if problems:
        return None, None, problems
    target = np.concatenate(
        list(iter_frame_chunks(_video_source(row["video"]), DECODE_CHUNK_FRAMES, size=size.size))
    )
    if target.shape != prediction.shape:
        raise ValueError(
            f"clip {spec.clip_id}: ground-truth video decodes to {target.shape[0]} frames of "
            f"{target.shape[2]}x{target.shape[1]} at evaluation size {size}, expected {spec.num_frames} frames"
        )
    values, features = scorer.score(prediction, target, row)
    bad = [name for name, value in values.items() if value is not None and not math.isfinite(value)]
    if bad:
        return None, None, [Problem(spec.clip_id, "nan", f"{spec.clip_id}: {', '.join(bad)} not finite")]
    record = {"clip_id": spec.clip_id, "subset": spec.subset, "difficulty": spec.difficulty}
    record["num_frames"] = spec.num_frames
    record.update(values)
    return record, features, []


def score_clips(
    test, paths: dict[str, Path], specs: list[ClipSpec], scorer: ClipScorer, state=None, progress=True
):
    """Read (:func:`~benchmark.submission.read_prediction`) and score the file ``paths[clip_id]`` of each of
    ``specs`` with the work split over the processes of ``state``; every process returns all ``(records,
    features, problems)`` in the order of ``specs``."""
    import datasets
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    state = state or distributed_state()
    index = {clip_id: i for i, clip_id in enumerate(test["clip_id"])}
    raw = test.cast_column("video", datasets.Video(decode=False)).cast_column(
        "audio", datasets.Audio(decode=False)
    )
    order = list(range(len(specs)))
    local = []
    with state.split_between_processes(order) as mine:
        for i in tqdm(mine, desc="scoring", disable=not progress or not state.is_main_process, unit="clip"):
            spec = specs[i]
            record, features, problems = _score_one(
                scorer, spec, raw[index[spec.clip_id]], paths[spec.clip_id]
            )
            local.append((i, record, features, problems))
    gathered = sorted(gather_object(local), key=lambda item: item[0])
    return [item[1:] for item in gathered]


def _table(per_clip: list[dict], features: dict[str, dict], metrics: list[str]) -> list[dict]:
    table = []
    for difficulty, subset in TABLE_ROWS:
        clips = [
            r for r in per_clip if difficulty in ("all", r["difficulty"]) and subset in ("all", r["subset"])
        ]
        row = {"difficulty": difficulty, "subset": subset, "n": len(clips)}
        for metric in metrics:
            if metric == "fvd":
                continue
            values = [r[metric] for r in clips if r.get(metric) is not None]
            row[metric] = float(np.mean(values)) if values else None
            if metric == "speaker_sync":
                row["speaker_sync_n"] = len(values)
        if "fvd" in metrics:
            real = [features[r["clip_id"]]["real"] for r in clips if len(features[r["clip_id"]]["real"])]
            fake = [features[r["clip_id"]]["fake"] for r in clips if len(features[r["clip_id"]]["fake"])]
            count = sum(len(f) for f in fake)
            row["fvd_n"] = count
            # A covariance needs at least 2 feature vectors; fewer leaves the cell empty (shown as "-").
            row["fvd"] = _frechet_distance(np.concatenate(real), np.concatenate(fake)) if count >= 2 else None
        table.append(row)
    return table


def evaluate_submission(
    dataset,
    predictions_dir: str | Path,
    *,
    config: str | None = None,
    metrics=("ssim", "psnr", "fvd", "speaker_sync"),
    i3d_path: str | None = None,
    trust_detector: bool = False,
    model_name: str = "",
    state=None,
    progress: bool = True,
    cache_dir: str | None = None,
    consistency_model: str | None = None,
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
) -> tuple[BenchmarkResults, ValidationReport]:
    """Validate and score a submission at ``evaluation_size`` (:mod:`benchmark.protocol`). FVD is included
    only when an I3D file is given (argument or ``$MIT_BENCH_I3D``), otherwise ``results.skipped["fvd"]`` says
    why. Clips with problems are left out and the results are then marked incomplete (``results.complete`` is
    False)."""
    metrics = [m for m in METRICS if m in metrics]
    skipped = {}
    if "fvd" in metrics:
        i3d_path, reason = resolve_i3d(i3d_path)
        if reason:
            metrics.remove("fvd")
            skipped["fvd"] = reason
    if "vbench_consistency" in metrics:
        consistency_model = consistency_model or os.environ.get(CONSISTENCY_MODEL_ENV)
        if not consistency_model:
            metrics.remove("vbench_consistency")
            skipped["vbench_consistency"] = (
                f"no feature model folder given (pass --consistency-model DIR or set ${CONSISTENCY_MODEL_ENV})"
            )
    test = load_test_split(dataset, config, cache_dir=cache_dir)
    specs = clip_specs(test)
    report = find_predictions(predictions_dir, specs)  # each file is read while scoring, as validate reads it
    valid = set(report.valid)
    state = state or distributed_state()
    scorer = ClipScorer(
        metrics,
        i3d_path=i3d_path,
        device=state.device,
        trust_detector=trust_detector,
        consistency_model=consistency_model,
        evaluation_size=evaluation_size,
    )
    scored = score_clips(
        test, report.paths, [s for s in specs if s.clip_id in valid], scorer, state, progress
    )
    per_clip, features = [], {}
    for record, clip_features, problems in scored:
        if problems:
            report.reject(problems)
            continue
        per_clip.append(record)
        features[record["clip_id"]] = clip_features
    dataset_name = (
        dataset if isinstance(dataset, (str, os.PathLike)) else getattr(test.info, "dataset_name", "")
    )
    results = BenchmarkResults(
        dataset=str(dataset_name or "MIT"),
        config=config or "all",
        predictions_dir=str(predictions_dir),
        num_expected=len(specs),
        per_clip=per_clip,
        table=_table(per_clip, features, metrics),
        metrics=metrics,
        skipped=skipped,
        conventions=metric_conventions(
            metrics, scorer.detector_name, scorer.consistency.name if scorer.consistency else ""
        ),
        problems=[{"clip_id": p.clip_id, "kind": p.kind, "message": p.message} for p in report.problems],
        model=model_name,
        test_set=fingerprint_test_split(test),
        evaluation_size=evaluation_size,
    )
    return results, report

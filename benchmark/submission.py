"""Submission validation: check a predictions folder against the test split *before* any score is computed.

A submission is a folder with one file per test clip, named by clip id: ``{clip_id}.mp4`` (H.264 or any
codec FFmpeg reads) or ``{clip_id}.npy`` (raw frames, ``(F, H, W, 3)``, uint8 or float in [0, 1]; the fps of
an ``.npy`` submission is taken to be the clip's). Frames are at the evaluation size
(:mod:`benchmark.protocol`, 640x384 by default) or at the clip's own size. Each problem is reported, never
raised, so one bad file cannot stop the check midway; scoring then runs only on the clips that passed and
marks its results incomplete when any did not.

``mit-bench validate`` and ``mit-bench evaluate`` share one lookup of the files (:func:`find_predictions`) and
one readability check (:func:`read_prediction`, which decodes every frame as scoring uses it), so a submission
one accepts the other scores completely, and the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mit_dataset.clip_folder import check_not_clip_folders
from mit_dataset.features import DIFFICULTIES, SUBSETS
from mit_dataset.media import probe_media

from .protocol import PAPER_EVALUATION_SIZE, EvaluationSize
from .video_loading import iter_frame_chunks, transform_frames

#: File suffixes a prediction may have, in order of preference.
PREDICTION_SUFFIXES = (".mp4", ".npy")

#: Every kind of problem the validator reports (the ``kind`` of :class:`Problem`).
PROBLEM_KINDS = (
    "missing",  # an expected test clip has no prediction file
    "extra",  # a prediction file names no test clip
    "duplicate",  # a clip has several prediction files (e.g. .mp4 and .npy)
    "unreadable",  # not a decodable video / array
    "frame_count",  # number of frames differs from the clip's
    "resolution",  # width x height is neither the evaluation size nor the clip's
    "fps",  # frame rate differs from the clip's
    "nan",  # NaN / inf / out-of-range pixel values, or a metric that came out non-finite
)

#: Frames decoded per chunk when a whole video is read.
DECODE_CHUNK_FRAMES = 64

#: Frame rates closer than this are the same (mp4 time bases store 25 fps as e.g. 25/1 or 12800/512).
FPS_TOLERANCE = 0.01


@dataclass(frozen=True)
class ClipSpec:
    """What a prediction for one test clip must look like, and where it belongs in Table 2."""

    clip_id: str
    subset: str
    difficulty: str
    num_frames: int
    width: int
    height: int
    fps: float


def load_test_split(dataset, config: str | None = None, cache_dir: str | None = None):
    """The test split as a ``datasets.Dataset`` from a dataset folder / Hub id (``load_dataset(dataset,
    config, split="test")``), a ``save_to_disk`` folder, a ``DatasetDict`` or a ``Dataset`` (rows whose
    ``split`` is not "test" are dropped)."""
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        if "test" not in dataset:
            raise ValueError(f"dataset has no 'test' split (splits: {sorted(dataset)})")
        dataset = dataset["test"]
    elif not isinstance(dataset, datasets.Dataset):
        check_not_clip_folders(dataset)
        try:
            if (Path(dataset) / "state.json").is_file() or (Path(dataset) / "dataset_dict.json").is_file():
                return load_test_split(datasets.load_from_disk(str(dataset)), config)  # save_to_disk folder
            dataset = datasets.load_dataset(str(dataset), config, split="test", cache_dir=cache_dir)
        except ValueError as error:
            raise ValueError(
                f"cannot load the test split of dataset {dataset!r} (config {config!r}): {error}"
            )
    if "split" in dataset.column_names and set(dataset.unique("split")) - {"test"}:
        dataset = dataset.filter(lambda split: split == "test", input_columns="split")
    if config in SUBSETS and set(dataset.unique("subset")) - {config}:
        dataset = dataset.filter(lambda subset: subset == config, input_columns="subset")
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset!r} has no test clips")
    return dataset


def clip_specs(test) -> list[ClipSpec]:
    """One :class:`ClipSpec` per test row, read without decoding any video."""
    columns = ["clip_id", "subset", "difficulty", "num_frames", "width", "height", "fps"]
    table = test.select_columns(columns).to_dict()
    specs = [ClipSpec(*values) for values in zip(*(table[c] for c in columns))]
    seen = set()
    for spec in specs:
        if spec.clip_id in seen:
            raise ValueError(f"test split has clip id {spec.clip_id!r} twice")
        seen.add(spec.clip_id)
        if spec.subset not in SUBSETS or spec.difficulty not in DIFFICULTIES:
            raise ValueError(
                f"test clip {spec.clip_id!r}: subset {spec.subset!r} / difficulty {spec.difficulty!r}, "
                f"expected one of {SUBSETS} / {DIFFICULTIES}"
            )
    return specs


@dataclass(frozen=True)
class Problem:
    clip_id: str
    kind: str
    message: str

    def __post_init__(self):
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}, expected one of {PROBLEM_KINDS}")


@dataclass
class ValidationReport:
    """Result of :func:`validate_submission`: the clips that may be scored and every problem found."""

    predictions_dir: str
    num_expected: int
    valid: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: The one file of each clip that has exactly one (:func:`find_predictions`): what validation and scoring
    #: read.
    paths: dict[str, Path] = field(default_factory=dict)

    def reject(self, problems: list[Problem]) -> None:
        """Record the problems of one clip found after the lookup, and leave that clip out of ``valid``."""
        self.problems.extend(problems)
        self.valid.remove(problems[0].clip_id)

    @property
    def ok(self) -> bool:
        """Every expected clip passed (an extra file alone is reported but does not make a submission bad)."""
        return len(self.valid) == self.num_expected

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict:
        return {
            "predictions_dir": self.predictions_dir,
            "num_expected": self.num_expected,
            "num_valid": len(self.valid),
            "problems": [asdict(p) for p in self.problems],
        }

    def format(self) -> str:
        """Human-readable report: a one-line verdict, then one line per problem grouped by kind."""
        head = f"submission {self.predictions_dir}: {len(self.valid)}/{self.num_expected} clips valid" + (
            f", {len(self.problems)} problem(s)" if self.problems else ""
        )
        lines = [head]
        for kind in PROBLEM_KINDS:
            found = self.problems_of(kind)
            if found:
                lines.append(f"  {kind} ({len(found)}):")
                lines.extend(f"    - {p.message}" for p in found)
        return "\n".join(lines)


def prediction_files(predictions_dir: Path) -> dict[str, list[Path]]:
    """Prediction files of a folder by clip id (hidden files, e.g. half-written temporaries, are skipped)."""
    found: dict[str, list[Path]] = {}
    for path in sorted(Path(predictions_dir).iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in PREDICTION_SUFFIXES:
            continue
        found.setdefault(path.stem, []).append(path)
    return found


def load_prediction_frames(path: Path, evaluation_size: EvaluationSize | None = None) -> np.ndarray:
    """Frames of one prediction file as ``(F, H, W, 3)``: uint8 from an mp4, the stored array (uint8 or float
    in [0, 1], memory-mapped) from an ``.npy``; brought to ``evaluation_size`` when given (cover transform; an
    mp4 is scaled by FFmpeg while decoding, as the ground truth is). ``ValueError`` when unreadable."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        size = evaluation_size.size if evaluation_size else None
        return np.concatenate(list(iter_frame_chunks(path, DECODE_CHUNK_FRAMES, size=size)))
    array = _load_npy(path)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{path}: expected an (F, H, W, 3) array, got shape {array.shape}")
    if not (array.dtype == np.uint8 or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{path}: dtype {array.dtype}, expected uint8 or float")
    if evaluation_size is None:
        return array
    return transform_frames(np.asarray(array), evaluation_size.transform(*array.shape[1:3]))


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error


def check_frames(
    spec: ClipSpec,
    frames: np.ndarray,
    fps: float | None = None,
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
    name: str | None = None,
) -> list[Problem]:
    """Problems of ``(F, H, W, 3)`` frames against ``spec``: shape, fps and (float) non-finite/out-of-range;
    messages begin with ``name`` (the file's name), else the clip id."""
    name = name or spec.clip_id
    problems = check_shape(spec, *frames.shape[:3], fps, evaluation_size, name=name)
    if np.issubdtype(frames.dtype, np.floating):
        finite = np.isfinite(frames)
        if not finite.all():
            first = int(np.argwhere(~finite)[0][0])
            problems.append(
                Problem(
                    spec.clip_id,
                    "nan",
                    f"{name}: {int((~finite).sum())} NaN/inf pixel values (first in frame {first})",
                )
            )
        elif frames.size and (frames.min() < 0.0 or frames.max() > 1.0):
            problems.append(
                Problem(
                    spec.clip_id,
                    "nan",
                    f"{name}: float pixel values in [{float(frames.min()):g}, "
                    f"{float(frames.max()):g}], expected [0, 1]",
                )
            )
    return problems


def accepted_sizes(spec: ClipSpec, evaluation_size: EvaluationSize) -> str:
    """The frame sizes a prediction of ``spec`` may have, in words (for messages)."""
    clip_size = f"{spec.width}x{spec.height}"
    if str(evaluation_size) == clip_size:
        return f"{clip_size} (the evaluation size and the clip's)"
    return f"{evaluation_size} (the evaluation size) or {clip_size} (the clip's size)"


def check_shape(
    spec: ClipSpec,
    count: int,
    height: int,
    width: int,
    fps: float | None = None,
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
    name: str | None = None,
    container_frames: int = 0,
) -> list[Problem]:
    """Problems of a frame count / size / fps against ``spec`` (fps ``None``: not checked); the size must be
    ``evaluation_size`` or the clip's own. Messages begin with ``name`` (the file's name), else the clip id;
    ``container_frames`` (what an mp4's index lists, 0: unknown) explains a short count by truncation."""
    name = name or spec.clip_id
    problems = []
    if count != spec.num_frames:
        listed = (
            f" (its container lists {container_frames}: truncated or corrupt)"
            if container_frames > count
            else ""
        )
        problems.append(
            Problem(
                spec.clip_id, "frame_count", f"{name}: {count} frames{listed}, expected {spec.num_frames}"
            )
        )
    if not evaluation_size.accepts(height, width, spec.height, spec.width):
        expected = accepted_sizes(spec, evaluation_size)
        problems.append(Problem(spec.clip_id, "resolution", f"{name}: {width}x{height}, expected {expected}"))
    if fps is not None and not math.isclose(fps, spec.fps, abs_tol=FPS_TOLERANCE):
        problems.append(Problem(spec.clip_id, "fps", f"{name}: {fps:g} fps, expected {spec.fps:g}"))
    return problems


def find_predictions(predictions_dir: str | Path, specs: Iterable[ClipSpec]) -> ValidationReport:
    """The one lookup of a submission's files, shared by ``validate`` and ``evaluate``: a report whose ``paths``
    hold the file of each clip that has exactly one and whose ``valid`` lists those clips (not read yet);
    missing clips, duplicates (``.mp4`` and ``.npy``) and files that name no test clip are its problems."""
    predictions_dir = Path(predictions_dir)
    specs = list(specs)
    report = ValidationReport(str(predictions_dir), num_expected=len(specs))
    if not predictions_dir.is_dir():
        report.problems.extend(
            Problem(s.clip_id, "missing", f"{s.clip_id}: predictions folder {predictions_dir} does not exist")
            for s in specs
        )
        return report
    files = prediction_files(predictions_dir)
    for spec in specs:
        paths = files.get(spec.clip_id, [])
        if not paths:
            report.problems.append(
                Problem(
                    spec.clip_id, "missing", f"{spec.clip_id}: no {spec.clip_id}.mp4 (or .npy) prediction"
                )
            )
        elif len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            report.problems.append(
                Problem(spec.clip_id, "duplicate", f"{spec.clip_id}: several predictions ({names}), keep one")
            )
        else:
            report.valid.append(spec.clip_id)
            report.paths[spec.clip_id] = paths[0]
    for clip_id in sorted(set(files) - {s.clip_id for s in specs}):
        for path in files[clip_id]:
            report.problems.append(
                Problem(clip_id, "extra", f"{path.name}: no test clip {clip_id!r} in the dataset")
            )
    return report


def read_prediction(
    spec: ClipSpec, path: Path, evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE
) -> tuple[np.ndarray | None, list[Problem]]:
    """The one readability check of a prediction file, shared by ``validate`` and ``evaluate``: its frames at
    the evaluation size, ``(frames, [])``, or ``(None, problems)``; never raises for a bad file.

    First what the file holds (an mp4 probed by decoding every frame, :func:`mit_dataset.media.probe_media`;
    an ``.npy`` memory-mapped): frame count, a size that is ``evaluation_size`` or the clip's, fps, float
    values in [0, 1]; then every frame decoded at the evaluation size, exactly as scoring uses them. Since
    ``validate`` runs this function on every file and ``evaluate`` scores what it returns, a submission one
    accepts the other scores completely. Each problem is one line naming the file and what was expected.
    """
    expected = (
        f"expected a video FFmpeg decodes (or an .npy array) of {spec.num_frames} frames at "
        f"{accepted_sizes(spec, evaluation_size)}, {spec.fps:g} fps"
    )
    try:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file (0 bytes)")
        if path.suffix.lower() == ".npy":
            problems = check_frames(spec, load_prediction_frames(path), None, evaluation_size, path.name)
        else:
            info = probe_media(path)
            problems = check_shape(
                spec, info.num_frames, info.height, info.width, info.fps, evaluation_size, path.name,
                info.container_frames,
            )  # fmt: skip
        if problems:
            return None, problems
        # Every frame as scoring uses it (a copy: .npy files are memory-mapped).
        frames = np.array(load_prediction_frames(path, evaluation_size))
    except (OSError, ValueError) as error:
        return None, [Problem(spec.clip_id, "unreadable", f"{error}; {expected}")]
    problems = check_frames(spec, frames, None, evaluation_size, path.name)
    return (None, problems) if problems else (frames, [])


def validate_submission(
    predictions_dir: str | Path,
    specs: Iterable[ClipSpec],
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
) -> ValidationReport:
    """Check a predictions folder against the expected test clips; every problem is collected, none raised.

    The lookup (:func:`find_predictions`: missing and extra clips, duplicates), then every file through
    :func:`read_prediction`, the check ``evaluate`` runs before scoring a clip (unreadable, truncated or corrupt
    files, wrong frame count / fps, a frame size that is neither ``evaluation_size`` nor the clip's, NaN/inf/
    out-of-range values): a submission this accepts is scored completely, and the reverse. A clip that fails
    any check is left out of ``report.valid``.
    """
    specs = list(specs)
    report = find_predictions(predictions_dir, specs)
    for spec in specs:
        if spec.clip_id in report.paths:
            _, problems = read_prediction(spec, report.paths[spec.clip_id], evaluation_size)
            if problems:
                report.reject(problems)
    return report

"""``mit-bench predict``: run a ``CovOGPipeline`` on every test clip to make a submission folder.

Resumable: a clip whose mp4 already exists with the right frame count and size is skipped, and each mp4 is
written atomically (temporary file + rename), so an interrupted run leaves only complete files (and a later run
removes the temporaries a killed one left). Concurrent runs on one folder share the clips through per-clip
claims (:mod:`mit_dataset.claims`). Clip ids come from the dataset and become file names only through
:func:`mit_dataset.safe_names.child_path`. The settings
are kept in ``predict_config.json``; resuming with other settings is refused (it would mix two models). Every clip
gets its own generator seeded from ``seed`` and the clip id, so the output of a clip does not depend on
which clips ran before it, on resuming, or on how clips are split over ``accelerate`` processes.

Predictions are written at the evaluation size (:mod:`benchmark.protocol`, 640x384 by default), which is also
the default generation size (the paper generates at 640x384). Another generation size must have the same
aspect ratio: its frames are then resized to the evaluation size with the cover transform, and any other
shape would show another part of the clip than the ground truth does.

Ablations (the paper's AnimateAnyone-style rows): ``disable_iad=True`` runs the loaded pipeline with its
Interactive Audio Drivers removed, ``joint_pose=True`` with the persons' pose maps composited and encoded
once (the single pose guider); see :func:`ablations`. A separately trained ablation model is simply another
``--model`` folder.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mit_dataset.atomic import atomic_write_text, remove_stale_temporaries
from mit_dataset.claims import claim, remove_stale_claims
from mit_dataset.safe_names import child_path

from .protocol import PAPER_EVALUATION_SIZE, EvaluationSize
from .scoring import distributed_state
from .submission import ClipSpec, clip_specs, load_test_split, read_prediction
from .video_loading import transform_frames

MANIFEST = "predict_config.json"


@dataclass
class PredictSummary:
    out_dir: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    redone: list[str] = field(default_factory=list)  # existing files that were invalid and regenerated


def clip_seed(seed: int, clip_id: str) -> int:
    """Per-clip seed: independent of run order, resumption and process count."""
    return (seed * 1_000_003 + zlib.crc32(clip_id.encode())) % (2**31)


def is_finished(path: Path, spec: ClipSpec, evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE) -> bool:
    """A prediction file that exists and passes the check ``validate`` and ``evaluate`` run
    (:func:`~benchmark.submission.read_prediction`): a resumed run regenerates every file they would refuse."""
    return path.is_file() and read_prediction(spec, path, evaluation_size)[0] is not None


#: Largest relative difference between the generation and evaluation aspect ratios (rounding to whole pixels).
ASPECT_TOLERANCE = 0.02


def _same_shape(height: int, width: int, evaluation_size: EvaluationSize) -> bool:
    return abs((width / height) / (evaluation_size.width / evaluation_size.height) - 1) <= ASPECT_TOLERANCE


def generation_size(
    pipeline, height: int | None, width: int | None, evaluation_size: EvaluationSize
) -> tuple[int, int]:
    """``(height, width)`` to generate at: the given size, which must have the evaluation size's aspect ratio
    (``ValueError`` otherwise: its frames would show another part of the clip than the ground truth); else the
    pipeline's own (``generation_defaults``) when it has that shape, so a small model runs at its size; else the
    evaluation size."""
    if height is not None or width is not None:
        if height is None or width is None:
            raise ValueError(f"give both the generation height and width or neither, got {height}x{width}")
        if not _same_shape(height, width, evaluation_size):
            raise ValueError(
                f"generation size {width}x{height} has another aspect ratio than the evaluation size "
                f"{evaluation_size}: its frames would show another part of the clip than the ground truth; "
                f"generate at {evaluation_size} or at a size of the same shape"
            )
        return height, width
    native = getattr(pipeline, "generation_defaults", {})
    if (
        native.get("height")
        and native.get("width")
        and _same_shape(native["height"], native["width"], evaluation_size)
    ):
        return native["height"], native["width"]
    return evaluation_size.height, evaluation_size.width


def load_pipeline(model_dir: str | Path, device: str = "cpu", dtype=None):
    """``CovOGPipeline.from_pretrained(model_dir, dtype=dtype)`` on ``device`` (loaded in its dtype, not cast with
    ``.to``: see :mod:`covog_diffusers.models.casting`)."""
    from covog_diffusers.pipelines import CovOGPipeline

    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved CovOG pipeline (no model_index.json)")
    return CovOGPipeline.from_pretrained(model_dir, dtype=dtype).to(device)


@contextlib.contextmanager
def ablations(pipeline, disable_iad: bool = False, joint_pose: bool = False):
    """Run the loaded pipeline as an ablation, restoring it afterwards.

    ``disable_iad``: the DenoisingNet without its Interactive Audio Drivers (``audio_drivers = None``, exactly
    what ``use_iad=False`` builds); ``joint_pose``: the pose guider and pose adaptor composite the persons'
    pose maps and encode them once (``joint=True``, AnimateAnyone's single pose guider). A pipeline without
    these components raises ``ValueError``: run the separately trained ablation model instead.
    """
    restore = []
    try:
        if disable_iad:
            unet = getattr(pipeline, "denoising_unet", None)
            if unet is None or not hasattr(unet, "audio_drivers"):
                raise ValueError(
                    f"{type(pipeline).__name__} has no DenoisingNet with audio drivers: it cannot run with the "
                    "IAD switched off; pass the separately trained ablation model with --model instead"
                )
            restore.append(lambda drivers=unet.audio_drivers: setattr(unet, "audio_drivers", drivers))
            unet.audio_drivers = None
        if joint_pose:
            encoders = [getattr(pipeline, name, None) for name in ("pose_guider", "pose_adaptor")]
            encoders = [e for e in encoders if e is not None]
            if not encoders or not all("joint" in getattr(e, "config", {}) for e in encoders):
                raise ValueError(
                    f"{type(pipeline).__name__} has no multi-human pose encoders with a 'joint' option: it "
                    "cannot run with a joint pose guider; pass the separately trained ablation model with "
                    "--model instead"
                )
            for encoder in encoders:
                restore.append(lambda e=encoder, j=encoder.config.joint: e.register_to_config(joint=j))
                encoder.register_to_config(joint=True)
        yield pipeline
    finally:
        for undo in reversed(restore):
            undo()


def model_name_from_manifest(predictions_dir: str | Path) -> str:
    """The model that made a predictions folder, from its ``predict_config.json``: the name of the pipeline
    folder, plus the ablation it ran as (``tiny-covog (IAD off)``). ``""`` when the file is absent, unreadable
    or names no model (a pipeline built in memory)."""
    try:
        settings = json.loads((Path(predictions_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return ""
    model = settings.get("model") if isinstance(settings, dict) else None
    if not isinstance(model, str) or not model.strip():
        return ""
    name = Path(model.strip()).name or model.strip()
    ablations = [
        text for key, text in (("disable_iad", "IAD off"), ("joint_pose", "joint pose")) if settings.get(key)
    ]
    return f"{name} ({', '.join(ablations)})" if ablations else name


def _check_settings(manifest: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to resume a folder made with other settings: it would mix two models in one submission."""
    if overwrite or not manifest.is_file():
        return
    try:
        previous = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        previous = {}
    changed = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
    if changed:
        diff = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise ValueError(
            f"{manifest.parent} holds predictions made with other settings ({diff}); resuming would mix them "
            "in one submission: pass --overwrite to regenerate every clip, or use another --out folder"
        )


def predict_submission(
    pipeline,
    dataset,
    out_dir: str | Path,
    *,
    config: str | None = None,
    cache_dir: str | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    seed: int = 0,
    num_frames: int | None = None,
    height: int | None = None,
    width: int | None = None,
    disable_iad: bool = False,
    joint_pose: bool = False,
    clip_ids: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    state=None,
    pipeline_kwargs: dict | None = None,
    evaluation_size: EvaluationSize = PAPER_EVALUATION_SIZE,
) -> PredictSummary:
    """Generate ``{clip_id}.mp4`` in ``out_dir`` for every test clip (or ``clip_ids``), skipping finished
    ones unless ``overwrite`` (then only clips finished before this call started are redone). ``num_frames``
    limits the generated length (then the submission is only valid against a dataset cut the same way: leave
    it ``None`` for a real submission). With an ``accelerate`` ``state`` of several processes, the clips are
    split between them. ``height``/``width``: the generation size (default: the pipeline's own when it has
    the evaluation size's shape, else ``evaluation_size``; see :func:`generation_size`); the mp4s are written
    at ``evaluation_size``. ``num_inference_steps`` / ``guidance_scale`` default to the pipeline's
    ``generation_defaults`` (recorded in the manifest).

    Concurrent runs on one ``out_dir`` (other processes, other hosts on a shared filesystem) share the work:
    each clip is claimed (:func:`mit_dataset.claims.claim`) before it is generated; a clip another worker is
    generating is left to it and waited for at the end, and taken over if that worker dies.

    Raises:
        UnsafeNameError: a test clip id cannot be a file name in ``out_dir`` (e.g. ``../x``), before any work.
        ValueError: unknown ``clip_ids``, ``out_dir`` holds predictions made with other settings, or the
            generation size has another aspect ratio than ``evaluation_size``.
    """
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm

    height, width = generation_size(pipeline, height, width, evaluation_size)

    state = state or distributed_state()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    remove_stale_claims(out_dir)
    test = load_test_split(dataset, config, cache_dir=cache_dir)
    specs = clip_specs(test)
    paths = {s.clip_id: child_path(out_dir, s.clip_id, ".mp4", what="test clip id") for s in specs}
    if clip_ids is not None:
        unknown = set(clip_ids) - set(paths)
        if unknown:
            raise ValueError(f"clip ids not in the test split: {sorted(unknown)}")
        specs = [s for s in specs if s.clip_id in set(clip_ids)]
    extra = dict(pipeline_kwargs or {})
    defaults = getattr(pipeline, "generation_defaults", {})
    if num_inference_steps is None:
        num_inference_steps = defaults.get("num_inference_steps", 25)
    if guidance_scale is None:
        guidance_scale = defaults.get("guidance_scale", 3.5)
    settings = {
        "model": str(getattr(pipeline, "name_or_path", "") or ""),
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "evaluation_size": str(evaluation_size),
        "disable_iad": disable_iad,
        "joint_pose": joint_pose,
        **{k: v for k, v in extra.items() if isinstance(v, (int, float, str, bool))},
    }
    _check_settings(out_dir / MANIFEST, settings, overwrite)
    if state.is_main_process:
        atomic_write_text(out_dir / MANIFEST, json.dumps(settings, indent=2) + "\n")
    started_ns = time.time_ns()

    def finished(spec: ClipSpec) -> bool:
        path = paths[spec.clip_id]
        return is_finished(path, spec, evaluation_size) and (
            not overwrite or path.stat().st_mtime_ns >= started_ns
        )

    index = {clip_id: i for i, clip_id in enumerate(test["clip_id"])}
    generation = dict(
        num_frames=num_frames,
        height=height,
        width=width,
        evaluation_size=evaluation_size,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        seed=seed,
        **extra,
    )
    local = PredictSummary(out_dir)

    def run(spec: ClipSpec, blocking: bool) -> bool:
        """Generate ``spec``'s clip under its claim; False when another worker holds the claim."""
        path = paths[spec.clip_id]
        with claim(path, blocking=blocking) as claimed:
            if not claimed:
                return False
            if finished(spec):  # by another worker, meanwhile
                local.skipped.append(spec.clip_id)
                return True
            if path.exists():
                local.redone.append(spec.clip_id)
            _generate_clip(pipeline, test[index[spec.clip_id]], spec, path, **generation)
            local.written.append(spec.clip_id)
        return True

    with state.split_between_processes(specs) as mine, ablations(pipeline, disable_iad, joint_pose):
        busy_elsewhere = []
        for spec in tqdm(
            mine, desc="predict", unit="clip", disable=not progress or not state.is_main_process
        ):
            if finished(spec):
                local.skipped.append(spec.clip_id)
            elif not run(spec, blocking=False):
                busy_elsewhere.append(spec)
        for spec in busy_elsewhere:  # wait for the other worker; take the clip over if it died
            run(spec, blocking=True)
    summary = PredictSummary(out_dir)
    for part in gather_object([local]):
        summary.written += part.written
        summary.skipped += part.skipped
        summary.redone += part.redone
    return summary


def _generate_clip(
    pipeline,
    row: dict,
    spec: ClipSpec,
    path: Path,
    *,
    num_frames,
    height,
    width,
    evaluation_size: EvaluationSize,
    seed,
    **call_kwargs,
) -> None:
    """Run the pipeline on one test row and write its mp4 (at the evaluation size) atomically."""
    import torch

    from covog_diffusers.video_export import export_to_video

    inputs = pipeline.inputs_from_mit_row(row, num_frames=num_frames, height=height, width=width)
    generator = torch.Generator(device="cpu").manual_seed(clip_seed(seed, spec.clip_id))
    output = pipeline(**inputs, generator=generator, output_type="np", **call_kwargs)
    frames = np.asarray(output.frames[0], dtype=np.float32)
    frames = transform_frames(frames, evaluation_size.transform(*frames.shape[1:3]))
    export_to_video(
        frames, path, fps=spec.fps, audio=inputs.get("audio"), sample_rate=inputs.get("sample_rate", 16_000)
    )

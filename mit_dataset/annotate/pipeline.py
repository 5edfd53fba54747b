"""Run the stages on one video (:func:`annotate_video`), on a folder of videos spread over processes
(:func:`annotate`), or as a ``datasets.map`` function (:func:`annotate_example`).

Resuming: every stage result is cached per video (:class:`~mit_dataset.annotate.layout.VideoCache`) under a
key chaining the stage's settings, its input files and the key of the stage before, so a rerun loads what is
still valid and recomputes the rest; a crash loses at most the stage that was running. A video's clip folders
are written into a staging folder (a writer-marked temporary, :mod:`mit_dataset.atomic`) and moved into the
output folder only when all of them are written, so a skipped or crashed video leaves nothing in the output.

Processes: :func:`annotate` hands each process of an ``accelerate`` ``PartialState`` its share of the videos
(``split_between_processes``, the videos ordered so that every share holds about the same number of bytes),
gathers the per-video reports (``gather_object``), and the main process alone writes ``splits.json``, the
report and the optional Hub export. ``torchrun --nproc_per_node N -m mit_dataset.cli annotate ...`` runs it on
N CPU processes; one process gives the same clips as many (``tests/mit_dataset/test_annotate_pipeline.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import atomic_path, remove_stale_temporaries, temporary_name
from ..distributed import distributed_state
from ..safe_names import UnsafeNameError, child_path
from .align import AlignedClip, align_clip
from .config import AnnotateConfig
from .errors import SkipVideo
from .faces import detect_face_tracks, import_face_tracks
from .layout import (
    RawVideo,
    VideoCache,
    file_fingerprint,
    find_raw_videos,
    folder_fingerprint,
    meta_array,
    read_meta_array,
)
from .normalize import NormalizedVideo, normalize_video
from .persons import boxes_from_poses, read_person_boxes
from .poses import read_poses
from .report import REPORT_FILE, AnnotateReport, VideoReport
from .selection import ClipSpan, select_clips
from .shots import detect_shots
from .speaking import baseline_speaking_scores, import_speaking_scores
from .splits import write_splits
from .tracks import pack_ragged, pack_tracks, unpack_ragged, unpack_tracks
from .write import write_clips

#: The stages in order (the keys of ``VideoReport.seconds``).
STAGES = ("normalize", "shots", "faces", "speaking", "selection", "poses", "persons", "align", "write")
#: Default cache folder inside the output folder (hidden: not a clip folder).
CACHE_DIRNAME = ".annotate-cache"
DONE_FILE = "done.json"
#: A ValueError that is not a SkipVideo is blamed on the source video in these stages, else on annotations.
_MEDIA_STAGES = ("normalize", "shots")


def _method(setting: str, available: bool, what: str, where: Path, missing: str = "missing") -> str:
    """``"import"`` or ``"builtin"`` for a stage whose setting is ``setting`` (see ``AnnotateConfig``)."""
    if setting == "import" and not available:
        raise SkipVideo("bad_annotation", f"{where}: {missing}, but {what}='import' was asked for")
    return "import" if setting == "import" or (setting == "auto" and available) else "builtin"


class _VideoRun:
    """Chains the cached stages of one video and records their timing in the report."""

    def __init__(self, video: RawVideo, cache: VideoCache, report: VideoReport, bar):
        self.video, self.cache, self.report, self.bar = video, cache, report, bar
        self.key = ""

    def stage(self, name: str, parts: tuple, compute: Callable, pack: Callable, unpack: Callable):
        self.key = hashlib.sha256(repr((self.key, name, parts)).encode()).hexdigest()[:16]
        self.bar.set_postfix_str(name)
        arrays = self.cache.load(name, self.key)
        if arrays is not None:
            self.report.cached.append(name)
            result = unpack(arrays)
        else:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                result = compute()
            except SkipVideo:
                raise
            except ValueError as error:
                reason = "unreadable" if name in _MEDIA_STAGES else "bad_annotation"
                raise SkipVideo(reason, str(error)) from error
            self.cache.save(name, self.key, pack(result))
            self.report.seconds[name] = round(time.perf_counter() - started, 3)
            self.report.cpu_seconds[name] = round(time.process_time() - cpu, 3)
        self.bar.update()
        return result


def _frames_of(spans: list[ClipSpan]) -> np.ndarray:
    return np.concatenate([np.arange(s.start, s.end) for s in spans]) if spans else np.zeros(0, np.int64)


def _per_clip(values: list, spans: list[ClipSpan]) -> list[list]:
    out, offset = [], 0
    for span in spans:
        out.append(values[offset : offset + span.num_frames])
        offset += span.num_frames
    return out


def _pack_aligned(clips: list[AlignedClip]) -> dict:
    arrays = {"notes": meta_array([c.notes for c in clips])}
    for i, clip in enumerate(clips):
        arrays.update({f"{i}_face": clip.face_boxes, f"{i}_person": clip.person_boxes})
        arrays.update({f"{i}_pose": clip.keypoints_133, f"{i}_score": clip.speaking_score_raw})
    return arrays


def _unpack_aligned(arrays: dict, spans: list[ClipSpan]) -> list[AlignedClip]:
    notes = read_meta_array(arrays["notes"])
    return [
        AlignedClip(
            span,
            arrays[f"{i}_face"],
            arrays[f"{i}_person"],
            arrays[f"{i}_pose"],
            arrays[f"{i}_score"],
            notes[i],
        )
        for i, span in enumerate(spans)
    ]


def _spans_meta(spans: list[ClipSpan]) -> np.ndarray:
    return meta_array([[s.start, s.end, s.shot, list(s.track_ids)] for s in spans])


def _spans_from(arrays: dict) -> list[ClipSpan]:
    return [ClipSpan(a, b, shot, tuple(ids)) for a, b, shot, ids in read_meta_array(arrays["spans"])]


def run_stages(
    video: RawVideo, cache: VideoCache, config: AnnotateConfig, report: VideoReport, bar
) -> tuple[list[AlignedClip], NormalizedVideo, str]:
    """Stages 1-8 of one video (cached): its aligned clips, normalised video and the key of the last stage.
    Raises :class:`SkipVideo`."""
    run = _VideoRun(video, cache, report, bar)
    mp4 = cache.path("normalized.mp4")
    if not mp4.is_file():  # the cached video is gone: its stage result is void
        cache.path("normalize.npz").unlink(missing_ok=True)
    normalized = run.stage(
        "normalize",
        (
            file_fingerprint(video.path),
            config.fingerprint("fps", "sample_rate", "max_irregular_steps", "crf", "normalize_preset"),
        ),
        lambda: normalize_video(video.path, mp4, config),
        lambda n: {"meta": meta_array(n.to_meta())},
        lambda a: NormalizedVideo.from_meta(mp4, read_meta_array(a["meta"])),
    )
    report.video_seconds = round(normalized.num_frames / normalized.fps, 3)
    shots = run.stage(
        "shots",
        (config.fingerprint("shot_threshold", "shot_analysis_width"),),
        lambda: detect_shots(normalized, config),
        lambda s: {"shots": np.asarray(s, np.int64).reshape(-1, 2)},
        lambda a: [tuple(int(v) for v in row) for row in a["shots"]],
    )
    face_method = _method(
        config.face_tracks, video.has_talknet(), "face_tracks", video.talknet_dir / "tracks.pckl"
    )
    track_settings = config.fingerprint("max_gap_frames", "min_track_frames", "track_min_iou")
    face_inputs = (
        folder_fingerprint(video.talknet_dir)
        if face_method == "import"
        else config.fingerprint("face_detect_every", "face_scale_factor", "min_face_size")
    )
    tracks = run.stage(
        "faces",
        (face_method, face_inputs, track_settings),
        lambda: (
            import_face_tracks(video, normalized, shots, config)
            if face_method == "import"
            else detect_face_tracks(normalized, shots, config)
        ),
        pack_tracks,
        unpack_tracks,
    )
    report.methods["face_tracks"] = face_method
    speaking_method = _method(
        config.speaking_scores,
        face_method == "import",
        "speaking_scores",
        video.talknet_dir / "scores.pckl",
        "its scores belong to TalkNet's face tracks, which are not used",
    )

    def speak():
        if speaking_method == "import":
            return import_speaking_scores(video, normalized, tracks)
        from ..video_io import read_audio

        return baseline_speaking_scores(normalized, read_audio(mp4, config.sample_rate), tracks, config)

    scores = run.stage(
        "speaking",
        (speaking_method,),
        speak,
        lambda s: pack_ragged(s, "scores"),
        lambda a: unpack_ragged(a, "scores"),
    )
    report.methods["speaking_scores"] = speaking_method
    spans = run.stage(
        "selection",
        (
            config.fingerprint(
                "min_clip_frames",
                "shot_min_frames",
                "min_face_size",
                "min_face_area_ratio",
                "min_speakers",
                "max_speakers",
            ),
        ),
        lambda: select_clips(shots, tracks, config),
        lambda s: {"spans": _spans_meta(s)},
        _spans_from,
    )
    if not spans:
        raise SkipVideo(
            "no_clip",
            f"{video.path}: no clip: no shot of >= {config.min_shot_frames} frames holds {config.min_speakers}-"
            f"{config.max_speakers} co-occurring faces of >= {config.min_face_size:g} px for >= "
            f"{config.min_clip_frames} frames ({len(tracks)} face tracks in {len(shots)} shots)",
        )
    frames = _frames_of(spans)
    source_frames = normalized.source_frames_of(frames)
    poses = run.stage(
        "poses",
        (folder_fingerprint(video.pose_dir),),
        lambda: read_poses(video, source_frames),
        lambda p: {"count": np.asarray([len(x) for x in p], np.int64), **pack_ragged(p, "poses")},
        lambda a: unpack_ragged(a, "poses"),
    )
    box_method = _method(config.person_boxes, video.labels_dir.is_dir(), "person_boxes", video.labels_dir)

    def person_boxes():
        if box_method == "import":
            return read_person_boxes(
                video.labels_dir,
                source_frames,
                normalized.width,
                normalized.height,
                config.min_person_confidence,
            )
        return [boxes_from_poses(p, config.pose_min_score) for p in poses]

    boxes = run.stage(
        "persons",
        (
            box_method,
            folder_fingerprint(video.labels_dir) if box_method == "import" else "",
            config.fingerprint("min_person_confidence", "pose_min_score"),
        ),
        person_boxes,
        lambda b: pack_ragged([np.asarray(x, np.float32).reshape(-1, 4) for x in b], "boxes"),
        lambda a: unpack_ragged(a, "boxes"),
    )
    report.methods["person_boxes"] = box_method
    by_id = {t.track_id: t for t in tracks}
    scores_by_id = {t.track_id: s for t, s in zip(tracks, scores)}
    aligned = run.stage(
        "align",
        (
            config.fingerprint(
                "pose_min_score", "min_pose_fraction_in_box", "track_min_iou", "max_gap_frames"
            ),
        ),
        lambda: [
            align_clip(span, by_id, scores_by_id, b, p, normalized.height, config)
            for span, b, p in zip(spans, _per_clip(boxes, spans), _per_clip(poses, spans))
        ],
        _pack_aligned,
        lambda a: _unpack_aligned(a, spans),
    )
    report.notes += [
        f"{span.name(video.source, video.video)}: {note}"
        for a, span in zip(aligned, spans)
        for note in a.notes
    ]
    return aligned, normalized, run.key


def _publish(staged: list[Path], out: Path) -> list[str]:
    """Move staged clip folders into ``out``, replacing same-named folders of an earlier run of this video."""
    names = []
    for folder in staged:
        with atomic_path(out / folder.name, directory=True) as tmp:
            os.rmdir(tmp)
            os.rename(folder, tmp)
        names.append(folder.name)
    return names


def _unpublish(names, out: Path, keep: set[str], video: RawVideo) -> None:
    """Delete ``video``'s clip folders of an earlier run that this run did not write again. ``names`` comes from
    the cache's done file (a file on disk, the cache folder may be shared): only safe names of this video's clips
    are deleted, so a forged or corrupt list can neither reach outside ``out`` nor another video's clips."""
    prefix = f"{video.source}_{video.video}_"
    for name in names if isinstance(names, list) else []:
        if not isinstance(name, str) or name in keep or not name.startswith(prefix):
            continue
        try:
            path = child_path(out, name, what="cached clip name")
        except UnsafeNameError:
            continue
        if path.is_dir():
            shutil.rmtree(path)


def annotate_video(
    video: RawVideo,
    out: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    config: AnnotateConfig | None = None,
    progress: bool = False,
) -> VideoReport:
    """Annotate one raw video into clip folders under ``out`` (stages cached under ``cache_dir``, default
    ``out/.annotate-cache``). Never raises for bad input: the report says ``skipped`` and why."""
    config = config or AnnotateConfig()
    out = Path(out)
    cache = VideoCache(Path(cache_dir) if cache_dir else out / CACHE_DIRNAME, video)
    report = VideoReport(video.source, video.video, video.path)
    previous = cache.read_json(DONE_FILE) or {}
    bar = tqdm(total=len(STAGES), desc=video.key, unit="stage", leave=False, disable=not progress)
    try:
        aligned, normalized, done_key = run_stages(video, cache, config, report, bar)
        names = [a.span.name(video.source, video.video) for a in aligned]
        if previous.get("key") == done_key and all((out / name).is_dir() for name in names):
            report.cached.append("write")
        else:
            started, cpu = time.perf_counter(), time.process_time()
            out.mkdir(parents=True, exist_ok=True)
            staging = out / temporary_name(f"{video.source}_{video.video}")
            try:
                from ..video_io import read_audio

                audio = read_audio(normalized.path, config.sample_rate)
                staged = write_clips(aligned, video, normalized, audio, staging, cache.path("cut"), config)
                names = _publish(staged, out)
            except ValueError as error:
                raise SkipVideo("bad_annotation", str(error)) from error
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            _unpublish(previous.get("clips"), out, set(names), video)
            cache.write_json(DONE_FILE, {"key": done_key, "clips": names})
            report.seconds["write"] = round(time.perf_counter() - started, 3)
            report.cpu_seconds["write"] = round(time.process_time() - cpu, 3)
        report.clips = names
        bar.update()
    except SkipVideo as error:
        report.skip(error.reason, str(error))
        _unpublish(previous.get("clips"), out, set(), video)
        cache.path(DONE_FILE).unlink(missing_ok=True)
    finally:
        bar.close()
    return report


def _balanced(videos: list[RawVideo], num_processes: int) -> list[RawVideo]:
    """Videos ordered so that the contiguous shares ``split_between_processes`` cuts hold similar byte counts:
    largest first, dealt round-robin (share ``i`` gets one more video exactly when accelerate gives it one)."""
    by_size = sorted(videos, key=lambda v: -os.path.getsize(v.path))
    return [video for i in range(num_processes) for video in by_size[i::num_processes]]


def annotate(
    raw_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    config: AnnotateConfig | None = None,
    cache_dir: str | os.PathLike | None = None,
    export: str | os.PathLike | None = None,
    progress: bool = True,
    state=None,
) -> AnnotateReport:
    """Annotate every video of ``raw_dir`` (layout: :mod:`mit_dataset.annotate.layout`) into official clip folders
    under ``out``, assign splits (``out/splits.json``), write ``out/annotate_report.json`` and, with ``export``,
    the Hub layout there (:func:`mit_dataset.hub.export_clip_folders`, replacing an earlier export).

    Every process of ``state`` (default: this process's ``accelerate`` state) returns the same report; only the
    main process writes the shared files.
    """
    from accelerate.utils import gather_object

    config = config or AnnotateConfig()
    state = state or distributed_state()
    out = Path(out)
    videos, refused = find_raw_videos(raw_dir)
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
    state.wait_for_everyone()
    local = []
    with state.split_between_processes(_balanced(videos, state.num_processes)) as mine:
        for video in tqdm(
            mine, desc="annotate", unit="video", disable=not progress or not state.is_main_process
        ):
            local.append(
                annotate_video(video, out, cache_dir, config, progress=progress and state.is_main_process)
            )
    reports = gather_object(local) if state.num_processes > 1 else local
    reports += [VideoReport("", Path(path).stem, path).skip("unreadable", reason) for path, reason in refused]
    reports.sort(key=lambda r: (r.source, r.video, r.path))
    report = AnnotateReport(
        str(raw_dir), str(out), config.to_dict(), reports, num_processes=state.num_processes
    )
    if state.is_main_process:
        if report.clips:
            write_splits(out, config)
        report.write(out / REPORT_FILE)
        if export is not None and report.clips:
            from ..hub import export_clip_folders

            export_clip_folders(out, export, overwrite=True, progress=progress)
    state.wait_for_everyone()
    return report


def annotate_example(
    example: dict, out: str, cache_dir: str | None = None, config: dict | None = None
) -> dict:
    """``datasets.map`` function: annotate the raw video of one row (the fields of
    :meth:`RawVideo.to_dict`) and return its report fields (``status``, ``reason``, ``message``, ``clips``).
    Afterwards call :func:`mit_dataset.annotate.splits.write_splits` once (``map`` does not)."""
    video = RawVideo(**{name: example[name] for name in ("source", "video", "path", "annotations")})
    report = annotate_video(video, out, cache_dir, AnnotateConfig.from_dict(config or {}))
    return {
        "status": report.status,
        "reason": report.reason,
        "message": report.message,
        "clips": report.clips,
    }


def raw_videos_dataset(raw_dir: str | os.PathLike):
    """The raw videos of ``raw_dir`` as a ``datasets.Dataset`` (one row per video) for :func:`annotate_example`."""
    from datasets import Dataset

    videos, _ = find_raw_videos(raw_dir)
    return Dataset.from_list([video.to_dict() for video in videos])

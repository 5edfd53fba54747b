"""The dataset commands of ``mit-talking``: make, export and inspect MIT dataset folders.

``add_commands`` adds them to a sub-parser set; the console script itself (with ``demo`` and the error rule) is
composed in ``mit_talk.cli``, above every part.
"""

from __future__ import annotations

from pathlib import Path


def _add_synth(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic MIT: a dataset folder (--out) or official raw clip folders (--clip-folders)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="dataset folder to create (script-free Hub layout)")
    target.add_argument(
        "--clip-folders",
        type=Path,
        help="folder of official per-clip folders to create (video.mp4, meta.json, speaker_info, pose/, "
        "splits.json): the input of `mit-talking export`",
    )
    parser.add_argument("--num-clips", type=int, default=12, help="number of clips over all splits")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic generator")
    parser.add_argument("--width", type=int, default=256, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=144, help="frame height in pixels")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip in seconds")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.set_defaults(run=_synth)


def _synth(args) -> None:
    from .hub import write_synthetic_dataset

    options = {
        "num_clips": args.num_clips,
        "seed": args.seed,
        "width": args.width,
        "height": args.height,
        "seconds": args.seconds,
        "overwrite": args.overwrite,
    }
    if args.out is not None:
        _print_summary(write_synthetic_dataset(args.out, **options))
        return
    from .clip_folder import list_clip_folders, read_splits

    out = write_synthetic_dataset(args.clip_folders, clip_folders=True, **options)
    folders, tests = len(list_clip_folders(out)), len(read_splits(out))
    print(
        f"wrote {folders} clip folders to {out}: train {folders - tests}, test {tests} "
        f"(next: mit-talking export {out} --out DATASET_DIR)"
    )


def _print_summary(folder: Path) -> None:
    from .info import dataset_overview

    print(f"wrote {folder}: {dataset_overview(folder).summary()}")


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export raw MIT clip folders to the Hub layout")
    parser.add_argument("clips", type=Path, help="folder of clip folders (video.mp4, meta.json, ...)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.set_defaults(run=_export)


def _export(args) -> None:
    from .hub import export_clip_folders

    _print_summary(export_clip_folders(args.clips, args.out, overwrite=args.overwrite))


def _add_show(subparsers) -> None:
    parser = subparsers.add_parser("show", help="overlay poses/boxes on a clip and plot its speaking scores")
    parser.add_argument("clip", help="clip id")
    parser.add_argument("--dataset", default="mit-talking", help="dataset folder or Hub id")
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the mp4 and the PNG")
    parser.add_argument("--cache-dir", default=None, help="datasets cache folder (default: datasets')")
    parser.set_defaults(run=_show)


def _show(args) -> None:
    from .show import show_clip

    overlay, plot = show_clip(args.dataset, args.clip, args.out, cache_dir=args.cache_dir)
    print(f"overlay video: {overlay}\nspeaking-score plot: {plot}")


def _add_annotate(subparsers) -> None:
    from .annotate.config import SOURCES

    parser = subparsers.add_parser(
        "annotate",
        help="annotate raw conversation videos into official MIT clip folders (the collection pipeline)",
        description="RAW_DIR/<source>/<video>.mp4 (+ RAW_DIR/<source>/<video>/pywork, pose, labels) -> "
        "CLIPS_DIR/<clip>/ folders, splits.json and annotate_report.json; resumable; "
        "torchrun --nproc_per_node N -m mit_talk.cli mit-talking annotate ... spreads videos over N processes.",
    )
    parser.add_argument(
        "raw", type=Path, metavar="RAW_DIR", help="folder of raw videos: RAW_DIR/<source>/<video>.mp4"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="CLIPS_DIR", help="folder of clip folders to fill"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="per-video stage cache (default: CLIPS_DIR/.annotate-cache)",
    )
    parser.add_argument(
        "--export",
        type=Path,
        metavar="DATASET_DIR",
        help="also write the Hub layout here (replaces an earlier export; default: no export)",
    )
    for name in ("face-tracks", "speaking-scores", "person-boxes"):
        parser.add_argument(
            f"--{name}", choices=SOURCES, default="auto", help="import external files or built in"
        )
    parser.add_argument(
        "--min-clip-frames", type=int, default=125, help="shortest clip, in frames (official: 125 = 5 s)"
    )
    parser.add_argument(
        "--min-face-size", type=float, default=64.0, help="smallest face side, in pixels (official: 64)"
    )
    parser.add_argument(
        "--min-face-area-ratio",
        type=float,
        default=0.5,
        help="smallest/largest face area in a clip must exceed this (official: 0.5)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=_annotate)


def _annotate(args) -> int:
    from .annotate import AnnotateConfig, annotate

    config = AnnotateConfig(
        face_tracks=args.face_tracks,
        speaking_scores=args.speaking_scores,
        person_boxes=args.person_boxes,
        min_clip_frames=args.min_clip_frames,
        min_face_size=args.min_face_size,
        min_face_area_ratio=args.min_face_area_ratio,
    )
    from .distributed import distributed_command

    with distributed_command() as state:
        report = annotate(
            args.raw,
            args.out,
            config=config,
            cache_dir=args.cache_dir,
            export=args.export,
            progress=not args.no_progress,
        )
    if state.is_main_process:
        print(report.summary())
    return 0


def _add_info(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="list a dataset's configs, splits and clips (subset, difficulty, speakers, frames)"
    )
    parser.add_argument("dataset", help="dataset folder or Hub id")
    parser.add_argument("--config", default=None, help="only this config's clips (default: all clips)")
    parser.set_defaults(run=_info)


def _info(args) -> None:
    from .info import dataset_overview

    print(dataset_overview(args.dataset, args.config).format())


def add_commands(subparsers) -> None:
    """Add ``synth``, ``export``, ``info``, ``show`` and ``annotate`` to ``subparsers`` (each sets ``run``)."""
    for add in (_add_synth, _add_export, _add_info, _add_show, _add_annotate):
        add(subparsers)

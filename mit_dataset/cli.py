"""The dataset commands of ``mit-talking``: make, export and inspect MIT dataset folders.

``add_commands`` adds them to a sub-parser set; the console script itself (with ``demo`` and the error rule) is
composed in ``mit_talk.cli``, above every part.
"""

from __future__ import annotations

from pathlib import Path


def _add_synth(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth", help="write a synthetic MIT dataset folder (script-free Hub layout)"
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--num-clips", type=int, default=12, help="number of clips over all splits")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic generator")
    parser.add_argument("--width", type=int, default=256, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=144, help="frame height in pixels")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.set_defaults(run=_synth)


def _synth(args) -> None:
    from .hub import write_synthetic_dataset

    write_synthetic_dataset(
        args.out,
        num_clips=args.num_clips,
        seed=args.seed,
        width=args.width,
        height=args.height,
        seconds=args.seconds,
        overwrite=args.overwrite,
    )


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export raw MIT clip folders to the Hub layout")
    parser.add_argument("clips", type=Path, help="folder of clip folders (video.mp4, meta.json, ...)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.set_defaults(run=_export)


def _export(args) -> None:
    from .hub import export_clip_folders

    export_clip_folders(args.clips, args.out, overwrite=args.overwrite)


def _add_show(subparsers) -> None:
    parser = subparsers.add_parser("show", help="overlay poses/boxes on a clip and plot its speaking scores")
    parser.add_argument("clip", help="clip id")
    parser.add_argument("--dataset", default="mit-talking", help="dataset folder or Hub id")
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="folder for the mp4 and the PNG")
    parser.set_defaults(run=_show)


def _show(args) -> None:
    from .show import show_clip

    overlay, plot = show_clip(args.dataset, args.clip, args.out)
    print(f"overlay video: {overlay}\nspeaking-score plot: {plot}")


def add_commands(subparsers) -> None:
    """Add ``synth``, ``export`` and ``show`` to ``subparsers`` (each sets ``run``)."""
    for add in (_add_synth, _add_export, _add_show):
        add(subparsers)

"""The ``mit-talking`` command: make, export, inspect the MIT dataset and run the end-to-end demo."""

from __future__ import annotations

import argparse
from pathlib import Path


def _add_synth(subparsers) -> None:
    parser = subparsers.add_parser("synth", help="write a synthetic MIT dataset folder (script-free Hub layout)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--num-clips", type=int, default=12, help="number of clips over all splits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each clip")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export raw MIT clip folders to the Hub layout")
    parser.add_argument("clips", type=Path, help="folder of clip folders (video.mp4, meta.json, ...)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")


def _add_show(subparsers) -> None:
    parser = subparsers.add_parser("show", help="overlay poses/boxes on a clip and plot its speaking scores")
    parser.add_argument("clip", help="clip id")
    parser.add_argument("--dataset", default="mit-talking", help="dataset folder or Hub id")
    parser.add_argument("--out", type=Path, default=Path("outputs"))


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="end-to-end demo on the embedded synthetic default")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mit-talking", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in (_add_synth, _add_export, _add_show, _add_demo):
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "synth":
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
    elif args.command == "export":
        from .hub import export_clip_folders

        export_clip_folders(args.clips, args.out, overwrite=args.overwrite)
    elif args.command == "show":
        from .show import show_clip

        overlay, plot = show_clip(args.dataset, args.clip, args.out)
        print(f"overlay video: {overlay}\nspeaking-score plot: {plot}")
    elif args.command == "demo":
        # The demo is the one place that drives every part (data -> model -> benchmark), so it lives in the
        # rightmost part and the dataset CLI only dispatches to it.
        from benchmark.demo import run_demo

        run_demo(args.out, seed=args.seed)


if __name__ == "__main__":
    main()

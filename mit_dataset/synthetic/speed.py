"""Throughput of the synthetic generator: ``python -m mit_dataset.synthetic.speed [--num-clips N] ...``.

Prints clips per second (wall clock and this process's CPU time; x264 may use extra threads) for
:func:`~mit_dataset.synthetic.generate_records` at the given size and length.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from .generator import generate_records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-clips", type=int, default=16)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        generate_records(
            out, 1, seed=args.seed + 1, width=args.width, height=args.height, progress=False
        )  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        generate_records(
            out, args.num_clips, seed=args.seed, width=args.width, height=args.height, seconds=args.seconds,
            progress=False,
        )  # fmt: skip
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{args.num_clips} clips of {args.seconds:g} s at {args.width}x{args.height}: "
        f"{args.num_clips / wall:.2f} clips/s wall ({wall / args.num_clips:.3f} s/clip), "
        f"{cpu / args.num_clips:.3f} CPU s/clip"
    )


if __name__ == "__main__":
    main()

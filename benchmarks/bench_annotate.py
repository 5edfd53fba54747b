"""Speed of the collection pipeline (``mit-talking annotate``): seconds of processing per second of video, per
stage, on a synthetic episode (default 5 minutes at 640x360), with the import paths (TalkNet pickles, Sapiens
JSON, YOLO labels) and with the built-in detectors (Haar face tracks, VAD x mouth-motion speaking scores, person
boxes from the poses); and the speed-up of 2 processes (torchrun + accelerate) over 1 on 4 shorter episodes.
The episodes imitate the authors' raw videos (MPEG-4 Part 2 + MP3 with timestamp gaps: the normalise stage
re-encodes them); the import path also runs on the same episode as downloads come (constant-rate H.264 + AAC:
the normalise stage copies its video stream), unless ``--skip-download``.

    python benchmarks/bench_annotate.py [--minutes 5] [--builtin-minutes 1] [--width 640 --height 360]

Every stage is reported as CPU seconds (this process, all its threads) and wall-clock seconds per second of
video: on a shared machine the CPU figure is the one that does not depend on the other jobs. The built-in path
runs on the first ``--builtin-minutes`` of a separate episode (its cost per video second does not depend on the
length; the whole 5 minutes take long with the Haar cascades). Clip thresholds are the official ones with the
face size scaled to the frame height (64 px at 1080 rows).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mit_dataset.annotate import STAGES, AnnotateConfig, annotate
from mit_dataset.synthetic.episode import plan_episode, write_episode

UNIT = 125  # the official minimum clip length: the reference episode's unit (shot lengths scale with it)
FRAMES_PER_REPEAT = 12.7 * UNIT  # plan_episode(UNIT) lasts 12.7 units


def _episodes(raw: Path, minutes: float, count: int, width: int, height: int, codec: str = "mpeg4") -> float:
    repeats = max(1, round(minutes * 60 * 25 / FRAMES_PER_REPEAT / count))
    seconds = 0.0
    for index in range(count):
        truth = write_episode(
            raw, plan_episode(UNIT, seed=index, repeats=repeats), video=f"episode{index}", width=width,
            height=height, seed=index, codec=codec, timestamps="gaps" if codec == "mpeg4" else "constant",
        )  # fmt: skip
        seconds += truth.num_frames / truth.fps
    return seconds


def _per_stage(report) -> dict[str, tuple[float, float]]:
    """``{stage: (CPU s, wall s) per video s}``."""
    total = sum(v.video_seconds for v in report.videos)
    return {
        stage: (
            sum(v.cpu_seconds.get(stage, 0.0) for v in report.videos) / total,
            sum(v.seconds.get(stage, 0.0) for v in report.videos) / total,
        )
        for stage in STAGES
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--builtin-minutes", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-builtin", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    args = parser.parse_args(argv)
    config = AnnotateConfig(min_face_size=64 * args.height / 1080)
    builtin = AnnotateConfig(
        min_face_size=config.min_face_size,
        face_tracks="builtin",
        speaking_scores="builtin",
        person_boxes="builtin",
    )
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-annotate-") as work:
        work = Path(work)
        started = time.perf_counter()
        seconds = _episodes(work / "raw", args.minutes, 1, args.width, args.height)
        print(
            f"episode: {seconds:.0f} s of video at {args.width}x{args.height} ({time.perf_counter() - started:.0f} s to make)"
        )
        report = annotate(work / "raw", work / "import", config=config, progress=False)
        print(report.summary())
        rows["import"] = _per_stage(report)
        if not args.skip_download:
            _episodes(work / "raw-download", args.minutes, 1, args.width, args.height, codec="h264")
            report = annotate(work / "raw-download", work / "download", config=config, progress=False)
            print(report.summary())
            rows["import (H.264 download)"] = _per_stage(report)
        if not args.skip_builtin:
            _episodes(work / "raw-builtin", args.builtin_minutes, 1, args.width, args.height)
            report = annotate(work / "raw-builtin", work / "builtin", config=builtin, progress=False)
            print(report.summary())
            rows["builtin"] = _per_stage(report)
        scaling = None
        if not args.skip_processes:
            raw4 = work / "raw4"
            seconds4 = _episodes(raw4, args.minutes / 2, 4, args.width, args.height)
            started = time.perf_counter()
            annotate(raw4, work / "one", config=config, progress=False)
            one = time.perf_counter() - started
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "mit_talk.cli", "mit-talking", "annotate", str(raw4), "--out", str(work / "two"),
                "--min-face-size", str(config.min_face_size), "--no-progress",
            ]  # fmt: skip
            started = time.perf_counter()
            subprocess.run(
                command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True
            )
            two = time.perf_counter() - started
            scaling = (seconds4, one, two)
    header = " | ".join(f"{name} path: CPU s / wall s per video s" for name in rows)
    print(f"\n| stage | {header} |")
    print(f"| --- | {' | '.join('---' for _ in rows)} |")
    for stage in STAGES:
        print(f"| {stage} | {' | '.join('{:.3f} / {:.3f}'.format(*rows[name][stage]) for name in rows)} |")
    totals = {name: tuple(sum(v[k] for v in rows[name].values()) for k in (0, 1)) for name in rows}
    print(f"| **total** | {' | '.join('**{:.3f} / {:.3f}**'.format(*totals[name]) for name in rows)} |")
    if scaling:
        seconds4, one, two = scaling
        print(f"\n4 episodes, {seconds4:.0f} s of video: 1 process {one:.1f} s, 2 processes {two:.1f} s "
              f"(torchrun start-up included): speed-up {one / two:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

"""Cost of the one media truth: :func:`~mit_dataset.media.probe_media` (a full decode) and
:func:`~mit_dataset.media.normalize_media` (16 kHz audio plus, for the video, a stream copy where it is safe,
else a decode + H.264 encode of the decoded frames), in seconds and as seconds of processing per second of
video. For sources it copies, the forced re-encode (``stream_copy=False``) is timed too. Prints a markdown
table.

    python benchmarks/bench_media.py                 # the real files of ../shared/real when present, plus two
                                                     # generated 1280x720 clips: constant-rate H.264 (copied)
                                                     # and one with a timestamp gap (re-encoded)
    python benchmarks/bench_media.py --quick         # the generated clips only, 3 s each

Each figure is the best of ``--repeats`` runs (machine load only ever adds time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mit_dataset.media import normalize_media, probe_media

REAL = Path(os.environ.get("MIT_TALK_REAL_MEDIA", Path(__file__).resolve().parents[2] / "shared" / "real"))


def generated_clip(
    path: Path, seconds: float, gap: bool, width: int = 1280, height: int = 720, fps: int = 25
) -> Path:
    """Moving gradient at ``fps`` (frame 6 missing, a timestamp gap, with ``gap``) and a 44.1 kHz stereo
    tone: H.264 + AAC as downloads come."""
    with av.open(str(path), "w") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = output.add_stream("aac", rate=44_100, layout="stereo")
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        for index in range(round(seconds * fps)):
            if gap and index == 6:
                continue
            image = np.broadcast_to((ramp + 4 * index) % 256, (height, width, 3)).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            output.mux(video.encode(frame))
        output.mux(video.encode())
        t = np.arange(round(seconds * 44_100)) / 44_100
        tone = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], 2, 0)
        for start in range(0, tone.shape[1], 1024):
            block = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + 1024]), "fltp", "stereo"
            )
            block.sample_rate, block.pts = 44_100, start
            output.mux(audio.encode(block))
        output.mux(audio.encode())
    return path


def best_of(repeats: int, function, *args, **kwargs) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        files = {
            "generated 1280x720 H.264, constant rate": generated_clip(work / "cfr.mp4", seconds, gap=False),
            "generated 1280x720 H.264, gap": generated_clip(work / "gap.mp4", seconds, gap=True),
        }
        if not args.quick and (REAL / "SOURCES.md").is_file():
            files["moore-animateanyone/1.mp4"] = REAL / "moore-animateanyone" / "1.mp4"
            files["moore-animateanyone/2.mp4"] = REAL / "moore-animateanyone" / "2.mp4"
        print(
            "| file | frames | size | fps | video s | probe s | normalise (video) s | per video s "
            "| forced re-encode s | per video s |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, path in files.items():
            info = probe_media(path)
            copied = not info.stream_copy_reasons()
            out = work / "out.mp4"
            probe = best_of(args.repeats, probe_media, path)
            normalise = best_of(args.repeats, normalize_media, path, out, info=info)
            if copied:
                re_encode = best_of(args.repeats, normalize_media, path, out, info=info, stream_copy=False)
                forced = f"{re_encode:.2f} | {re_encode / info.duration:.2f}"
            else:
                forced = "(same) | "
            print(
                f"| {name} | {info.num_frames} | {info.width}x{info.height} | {info.fps:g} | "
                f"{info.duration:.1f} | {probe:.2f} | {normalise:.2f} ({'copy' if copied else 're-encode'}) | "
                f"{normalise / info.duration:.2f} | {forced} |"
            )
        print(f"\nCPU threads available: {os.cpu_count()}; best of {args.repeats} runs each.")


if __name__ == "__main__":
    main()

"""Data-side benchmark of MIT: synthetic generation rate, training-view throughput against raw PyAV decoding
of the same frames, and random access cost against clip length. Prints a markdown table; every figure
comes from this one run (the raw-decode baseline is measured interleaved with the view, sample by sample,
so machine load affects both alike).

    python benchmarks/bench_data.py            # about 1-2 min on a 2-core machine
    python benchmarks/bench_data.py --quick    # fewer samples, smaller clips (CI smoke run)

(a) ``generate_records`` at its default size (256x144, 3 s clips), clips per second.
(b) :class:`~mit_dataset.torch_view.MITVideoDataset` items (16 frames at 384x640, random windows and
    reference frames, pose maps, 4 face-mask factors, audio windows) per second, against PyAV decoding
    the same frames (window + reference, one thread, as RGB arrays). Target: view >= 0.5 x raw.
(c) One 16-frame window from the middle of a 10 s and of a 60 s clip: the cost must not grow with the
    clip length. Windows are spread over the GOP around the middle so both clips decode the same number
    of frames; ``dataset[i]`` (the plain row access, for contrast) is shown too.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import datasets
import torch

from mit_dataset.clip import ClipRecord, PersonTrack
from mit_dataset.features import FPS, MIT_FEATURES, SAMPLING_RATE
from mit_dataset.keypoints import NUM_KEYPOINTS
from mit_dataset.masks import box_mask_rle
from mit_dataset.row_arrays import clip_arrays
from mit_dataset.torch_view import MITVideoDataset
from mit_dataset.video_io import write_video

#: libx264's default GOP (keyint) used by mit_dataset.video_io.write_video.
GOP = 250


def _rows(records: list[ClipRecord]) -> datasets.Dataset:
    return datasets.Dataset.from_list([r.to_row() for r in records], features=MIT_FEATURES)


def bench_generation(work: Path, quick: bool) -> dict:
    try:
        from mit_dataset.synthetic import generate_records
    except ImportError as error:  # the generator is optional for this script
        return {"skipped": f"mit_dataset.synthetic not importable ({error})"}
    count = 2 if quick else 4
    generate_records(work / "warmup", 1, seed=99, seconds=0.4, progress=False)
    start = time.perf_counter()
    generate_records(work / "gen", count, seed=0, progress=False)
    elapsed = time.perf_counter() - start
    return {"clips": count, "seconds": elapsed, "clips_per_s": count / elapsed}


def _view_records(work: Path, quick: bool) -> list[ClipRecord]:
    """Synthetic clips at 640x384 (the view's output size: no resize, so the comparison is decode vs view)."""
    seconds = 4.0 if quick else 8.0
    try:
        from mit_dataset.synthetic import generate_records

        return generate_records(
            work / "view", 2, seed=1, width=640, height=384, seconds=seconds, progress=False
        )
    except ImportError:
        return [_plain_record(work, f"view{i}", seconds, 640, 384, people=2 + 2 * i) for i in range(2)]


def _plain_record(
    work: Path, clip_id: str, seconds: float, width: int, height: int, people: int = 3
) -> ClipRecord:
    """A quick valid clip (moving gradient, people side by side) for clip-length scaling."""
    rng = np.random.default_rng(abs(hash(clip_id)) % 2**32)
    frames = round(seconds * FPS)
    ys, xs = np.mgrid[0:height, 0:width]

    def video():
        for t in range(frames):
            frame = np.empty((height, width, 3), np.uint8)
            frame[..., 0] = (xs + 3 * t) % 256
            frame[..., 1] = (ys + t) % 256
            frame[..., 2] = 128
            yield frame

    path = write_video(work / f"{clip_id}.mp4", video(), fps=FPS)
    persons = []
    slot = width / people
    for i in range(people):
        kp = np.empty((frames, NUM_KEYPOINTS, 3), np.float32)
        kp[..., 0] = rng.uniform(i * slot + 4, (i + 1) * slot - 4, (frames, NUM_KEYPOINTS))
        kp[..., 1] = rng.uniform(0.2 * height, height - 4, (frames, NUM_KEYPOINTS))
        kp[..., 2] = 0.9
        box = np.array([i * slot + 2, 0.1 * height, (i + 1) * slot - 2, height - 1], np.float32)
        face = np.array(
            [i * slot + slot * 0.3, 0.1 * height, (i + 1) * slot - slot * 0.3, 0.4 * height], np.float32
        )
        rle = box_mask_rle(box, height, width)
        persons.append(
            PersonTrack(
                f"p{i}",
                f"id{i}",
                kp,
                np.repeat(box[None], frames, 0),
                np.repeat(face[None], frames, 0),
                rng.normal(0, 2, frames).astype(np.float32),
                [rle] * frames,
            )
        )
    audio = (0.1 * rng.standard_normal(round(seconds * SAMPLING_RATE))).astype(np.float32)
    return ClipRecord(
        clip_id, "synthetic", "multi_human", "train", path, audio, frames, width, height, persons
    )


def raw_decode(data: bytes, indices: np.ndarray) -> list[np.ndarray]:
    """PyAV baseline: decode exactly ``indices`` as RGB arrays with one decoder thread; frames less than a
    GOP apart are decoded in one run, each run starts with a seek to the keyframe before it."""
    wanted = sorted({int(i) for i in indices})
    runs, frames = [[wanted[0]]], []
    for index in wanted[1:]:
        if index - runs[-1][-1] > GOP:
            runs.append([index])
        else:
            runs[-1].append(index)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        rate = stream.average_rate
        for run in runs:
            container.seek(
                int(run[0] / rate / stream.time_base), stream=stream, backward=True, any_frame=False
            )
            todo = set(run)
            for frame in container.decode(stream):
                index = round(float(frame.pts * stream.time_base * rate))
                if index in todo:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    todo.discard(index)
                if index >= run[-1]:
                    break
            if todo:
                raise RuntimeError(f"PyAV baseline missed frames {sorted(todo)}")
    return frames


def bench_view(work: Path, quick: bool) -> dict:
    split = _rows(_view_records(work, quick))
    views = {
        "float32": MITVideoDataset(split, num_frames=16, stride=1, height=384, width=640),
        "uint8": MITVideoDataset(
            split, num_frames=16, stride=1, height=384, width=640, pose_dtype=torch.uint8
        ),
    }
    default = views["float32"]
    videos = [bytes(clip_arrays(default._arrow[i]).video_bytes.numpy()) for i in range(len(split))]
    persons = [len(p) for p in split.select_columns(["persons"]).with_format("arrow")["persons"].to_pylist()]
    lengths = list(split.select_columns(["num_frames"]).with_format("numpy")["num_frames"])
    samples = 6 if quick else 16
    for view in views.values():  # warm-up: imports, and the first (page-faulting) buffer of each shape
        for index in range(len(split)):
            view[index]
    raw_decode(videos[0], np.arange(16))
    seconds = {name: 0.0 for name in (*views, "raw")}
    for k in range(samples):
        index = k % len(default)
        plan = default.plan(k, int(lengths[index]))
        for name, view in views.items():
            start = time.perf_counter()
            item = view.load(clip_arrays(view._arrow[index]), plan, row_index=index)
            seconds[name] += time.perf_counter() - start
            del item
        start = time.perf_counter()
        raw_decode(videos[index], np.append(plan.frame_indices, plan.reference_index))
        seconds["raw"] += time.perf_counter() - start
    rates = {name: samples / value for name, value in seconds.items()}
    return {"samples": samples, "persons": persons, "rates": rates}


def bench_random_access(work: Path, quick: bool) -> dict:
    lengths = (10.0, 60.0)
    records = [_plain_record(work, f"len{int(s)}", s, 320, 192) for s in lengths]
    split = _rows(records)
    view = MITVideoDataset(split, num_frames=16, height=384, width=640, reference="first")
    repeats = 3 if quick else 6
    view.load_window(0, 0)  # warm-up
    # Windows spread over the GOP around each clip's middle (same decode work in both clips), the two
    # clips interleaved so that machine load hits both alike.
    starts = {}
    for index, seconds in enumerate(lengths):
        gop_start = (round(seconds * FPS) // 2 // GOP) * GOP
        starts[index] = gop_start + np.linspace(5, GOP - 16 - 5, repeats).astype(int)
    window = {index: [] for index in starts}
    row = {index: [] for index in starts}
    for k in range(repeats):
        for index in starts:
            begin = time.perf_counter()
            view.load_window(index, int(starts[index][k]), reference_index=int(starts[index][k]))
            window[index].append(time.perf_counter() - begin)
            if k < 2:
                begin = time.perf_counter()
                split[index]
                row[index].append(time.perf_counter() - begin)
    result = {
        seconds: {"window_ms": 1000 * float(np.median(window[i])), "row_ms": 1000 * float(np.median(row[i]))}
        for i, seconds in enumerate(lengths)
    }
    result["growth"] = result[60.0]["window_ms"] / result[10.0]["window_ms"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter clips")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        generation = bench_generation(work, args.quick)
        view = bench_view(work, args.quick)
        access = bench_random_access(work, args.quick)
    print(f"\n## MIT data benchmark ({os.cpu_count()} CPUs{', --quick' if args.quick else ''})\n")
    print("| measurement | value | note |")
    print("| --- | --- | --- |")
    if "skipped" in generation:
        print(f"| (a) synthetic generation | skipped | {generation['skipped']} |")
    else:
        print(
            f"| (a) synthetic generation, 256x144, 3 s clips | {generation['clips_per_s']:.2f} clips/s | "
            f"{generation['clips']} clips in {generation['seconds']:.1f} s |"
        )
    rates = view["rates"]
    print(
        f"| (b) training view, 16 frames at 384x640 + poses + masks + audio | {rates['float32']:.2f} samples/s | "
        f"{view['samples']} random windows + reference frames, persons per clip {view['persons']}, float32 pose maps |"
    )
    print(f"| (b) same with `pose_dtype=torch.uint8` | {rates['uint8']:.2f} samples/s | pose maps 0..255 |")
    print(
        f"| (b) raw PyAV decode of the same frames | {rates['raw']:.2f} samples/s | 1 decoder thread, RGB arrays |"
    )
    for name in ("float32", "uint8"):
        ratio = rates[name] / rates["raw"]
        verdict = "ok" if ratio >= 0.5 else "BELOW TARGET"
        print(f"| (b) view ({name} poses) / raw decode | {ratio:.2f} | target >= 0.5: {verdict} |")
    for seconds in (10.0, 60.0):
        print(
            f"| (c) one mid-clip window, {seconds:.0f} s clip | {access[seconds]['window_ms']:.0f} ms | "
            f"plain dataset[i] row: {access[seconds]['row_ms']:.0f} ms |"
        )
    verdict = "ok" if access["growth"] < 1.5 else "GROWS WITH LENGTH"
    print(f"| (c) 60 s / 10 s window time | {access['growth']:.2f} | target ~1: {verdict} |")
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

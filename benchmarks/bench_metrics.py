"""Benchmark of the MIT metrics. Prints a markdown table; every figure comes from this one run.

    python benchmarks/bench_metrics.py                        # about 5-10 min on a 2-core machine
    python benchmarks/bench_metrics.py --quick                # fewer frames (smoke run)
    python benchmarks/bench_metrics.py --only kernel,evaluate # some of the sections (a)-(e) below

(a) PSNR + SSIM (Gaussian RGB) throughput, frames/s, of :func:`benchmark.video_metrics.frame_metrics` (eager
    and compiled) against scikit-image's per-frame loop on the same 640x384 frames, and the largest difference
    between their values. Timed alternately, repetition by repetition, so machine load affects all alike;
    single-thread speed-ups are also given in CPU time (the process's own work, which other processes' load
    barely changes).
(b) FVD feature extraction frames/s (preprocessing + a random-init full-size InceptionI3d, 16-frame clips at
    224x224), on CPU and on CUDA when available.
(c) Speaker sync on synthetic MIT clips: frames/s, and the separation of ground-truth speaking scores from
    swapped ones (what ``tests/benchmark/test_speaker_sync.py`` asserts).
(d) The compiled kernel's warm-up: the first 640x384 call in a fresh process with an empty inductor cache
    (compilation) and with the cache it left (the usual case).
(e) ``mit-bench evaluate`` end to end -- :func:`benchmark.scoring.evaluate_submission` with SSIM and PSNR:
    loading the split, validating, decoding both videos, bringing the ground truth to the 640x384 evaluation
    size, scoring -- in frames/s against a PyAV + scikit-image loop doing the same work (PyAV decodes the
    prediction and the ground truth, scaled by FFmpeg to cover 640x384 and centre-cropped; scikit-image scores
    each frame) at equal thread counts (``torch.set_num_threads`` and the decoders' thread count), on a
    synthetic test split with 1920x1080 ground truth (MIT's size) and one with 640x384 ground truth. Target:
    >= 5x.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import av
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.fvd import preprocess_clips
from benchmark.i3d import InceptionI3d
from benchmark.protocol import PAPER_EVALUATION_SIZE
from benchmark.speaker_sync import score_video
from benchmark.video_metrics import frame_metrics
from mit_dataset.safe_names import child_path


def textured_pair(num_frames: int, height: int = 384, width: int = 640, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(xx[..., None] / 9.0 + np.arange(3)) * np.cos(yy[..., None] / 13.0)
    reference = np.clip(base[None] + rng.normal(0, 12, (num_frames, height, width, 3)), 0, 255).astype(
        np.uint8
    )
    noise = rng.integers(-20, 21, reference.shape)
    prediction = np.clip(reference.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return prediction, reference


def skimage_frame(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(PSNR, SSIM) of one frame, scikit-image's reference convention."""
    psnr = peak_signal_noise_ratio(ref, pred, data_range=255)
    ssim = structural_similarity(
        ref,
        pred,
        channel_axis=-1,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    return psnr, ssim


def skimage_frames(pred, ref):
    return tuple(np.array(v) for v in zip(*(skimage_frame(p, r) for p, r in zip(pred, ref))))


def torch_frames(pred, ref, device, compile):
    values = frame_metrics(
        torch.from_numpy(pred).to(device), torch.from_numpy(ref).to(device), compile=compile
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return values["psnr"].numpy(), values["ssim"].numpy()


def timed(function, *args):
    """``(result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def bench_frame_metrics(num_frames: int, repeats: int, devices) -> list[list[str]]:
    """scikit-image (one thread) against the torch kernel eager and compiled, on CPU with one thread (the same
    resources) and the default count, and on CUDA when available; after a warm-up (compilation included)."""
    pred, ref = textured_pair(num_frames)
    default_threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    variants = {"eager, cpu, 1 thread": (cpu, 1, False), "compiled, cpu, 1 thread": (cpu, 1, True)}
    if default_threads > 1:
        variants[f"compiled, cpu, {default_threads} threads"] = (cpu, default_threads, True)
    variants.update({f"eager, {d.type}": (d, default_threads, False) for d in devices if d.type != "cpu"})
    for device, threads, compiled in variants.values():  # warm-up: kernels, allocator, compilation
        torch.set_num_threads(threads)
        torch_frames(pred[:1], ref[:1], device, compiled)
    wall = {"skimage": [], **{name: [] for name in variants}}
    cpu_time = {name: [] for name in wall}
    values = {}
    for _ in range(repeats):
        torch.set_num_threads(1)
        values["skimage"], seconds, cpu_seconds = timed(skimage_frames, pred, ref)
        wall["skimage"].append(seconds)
        cpu_time["skimage"].append(cpu_seconds)
        for name, (device, threads, compiled) in variants.items():
            torch.set_num_threads(threads)
            values[name], seconds, cpu_seconds = timed(torch_frames, pred, ref, device, compiled)
            wall[name].append(seconds)
            cpu_time[name].append(cpu_seconds)
    torch.set_num_threads(default_threads)
    base_wall, base_cpu = np.median(wall["skimage"]), np.median(cpu_time["skimage"])
    rows = [["PSNR+SSIM 640x384, scikit-image per-frame loop (cpu, 1 thread)", f"{num_frames / base_wall:.1f}",
             "1.0x", "1.0x", "-"]]  # fmt: skip
    for name, (device, threads, _) in variants.items():
        speedup_cpu = (
            f"{base_cpu / np.median(cpu_time[name]):.1f}x" if threads == 1 and device.type == "cpu" else "-"
        )
        diff = max(np.abs(values[name][i] - values["skimage"][i]).max() for i in range(2))
        rows.append([f"PSNR+SSIM 640x384, torch kernel ({name})", f"{num_frames / np.median(wall[name]):.1f}",
                     f"{base_wall / np.median(wall[name]):.1f}x", speedup_cpu, f"{diff:.1e}"])  # fmt: skip
    return rows


@torch.no_grad()
def bench_fvd_features(num_clips: int, devices) -> list[list[str]]:
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (num_clips, 16, 384, 640, 3), dtype=np.uint8)
    rows = []
    for device in devices:
        torch.manual_seed(0)
        model = InceptionI3d().eval().to(device)
        model(preprocess_clips(clips[:1]).to(device))  # warm-up
        start = time.perf_counter()
        for clip in clips:
            features = model(preprocess_clips(clip[None]).to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        assert features.shape == (1, 400)
        rows.append(
            [
                f"FVD features, InceptionI3d full size, random init ({device.type})",
                f"{num_clips * 16 / elapsed:.1f}",
                "-",
                "-",
                "-",
            ]
        )
    return rows


def bench_speaker_sync(num_clips: int, work: Path) -> tuple[list[list[str]], str]:
    from mit_dataset.synthetic import generate_records

    records = generate_records(work / "synthetic", num_clips, seed=0, progress=False)
    truth, swapped, frames, elapsed = [], [], 0, 0.0
    for record in records:
        boxes = np.stack([p.face_boxes for p in record.persons])
        scores = np.stack([p.speaking_score for p in record.persons])
        start = time.perf_counter()
        truth.append(score_video(record.video_path, boxes, scores))
        elapsed += time.perf_counter() - start
        frames += record.num_frames
        swapped.append(score_video(record.video_path, boxes, np.roll(scores, 1, axis=0)))

    def mean(results, key):
        return np.nanmean([r[key] for r in results])

    rows = [["Speaker sync, synthetic 256x144 clips (cpu)", f"{frames / elapsed:.1f}", "-", "-", "-"]]
    note = (
        f"Speaker sync on {num_clips} synthetic clips (seed 0): ground truth {mean(truth, 'speaker_sync'):.3f} "
        f"(false talking {mean(truth, 'false_talking_rate'):.3f}); speaking scores swapped between persons "
        f"{mean(swapped, 'speaker_sync'):.3f} (false talking {mean(swapped, 'false_talking_rate'):.3f})."
    )
    return rows, note


_FIRST_CALL = (
    "import time, numpy as np\n"
    "from benchmark.video_metrics import frame_metrics\n"
    "frames = np.zeros((1, 384, 640, 3), np.uint8)\n"
    "start = time.perf_counter(); frame_metrics(frames, frames, compile=True)\n"
    "print(time.perf_counter() - start)\n"
)


def bench_compile_warmup(work: Path) -> str:
    """Wall seconds of the first compiled call in a fresh process: empty inductor cache, then warm cache."""
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor")}
    seconds = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True, check=True
        )
        seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return (
        f"Compiled kernel warm-up, first 640x384 call in a fresh process: {seconds[0]:.0f} s with an empty "
        f"inductor cache (compilation), {seconds[1]:.0f} s with the cache it left (every later run)."
    )


def _pyav_frames(source: bytes, threads: int, transform=None) -> list[np.ndarray]:
    """Every frame of an mp4 as RGB, scaled by FFmpeg to ``transform``'s resized size and cropped."""
    frames = []
    with av.open(io.BytesIO(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE" if threads == 1 else "AUTO"
        stream.thread_count = threads
        for frame in container.decode(stream):
            if transform is None:
                frames.append(frame.to_ndarray(format="rgb24"))
                continue
            rgb = frame.reformat(
                width=transform.resized_width, height=transform.resized_height, format="rgb24",
                interpolation="BILINEAR",
            ).to_ndarray()  # fmt: skip
            top, left = transform.offset_y, transform.offset_x
            frames.append(rgb[top : top + transform.height, left : left + transform.width])
    return frames


def pyav_skimage_loop(dataset_dir: Path, predictions: Path, threads: int, cache: Path) -> dict:
    """The baseline: the same work as ``evaluate`` with SSIM and PSNR, written as a plain loop."""
    import datasets

    test = datasets.load_dataset(str(dataset_dir), split="test", cache_dir=str(cache))
    test = test.cast_column("video", datasets.Video(decode=False))
    values = {}
    for row in test:
        transform = PAPER_EVALUATION_SIZE.transform(row["height"], row["width"])
        truth = _pyav_frames(row["video"]["bytes"], threads, transform)
        generated = _pyav_frames(
            child_path(predictions, row["clip_id"], ".mp4", what="clip id").read_bytes(), threads
        )
        scores = [skimage_frame(p, t) for p, t in zip(generated, truth, strict=True)]
        values[row["clip_id"]] = np.mean(scores, axis=0)
    return values


def make_evaluation_set(work: Path, num_clips: int, seconds: float, width: int, height: int):
    """A synthetic test split at ``width x height`` and predictions at the evaluation size (the ground truth
    through the cover transform, with mild noise)."""
    import datasets

    from mit_dataset.frame_decoder import iter_frames
    from mit_dataset.hub import write_synthetic_dataset
    from mit_dataset.video_io import write_video

    dataset_dir = write_synthetic_dataset(
        work / f"mit_{width}x{height}", num_clips=num_clips, seed=0, width=width, height=height,
        seconds=seconds, progress=False,
    )  # fmt: skip
    test = datasets.load_dataset(str(dataset_dir), split="test", cache_dir=str(work / "cache"))
    predictions = work / f"predictions_{width}x{height}"
    rng = np.random.default_rng(0)
    num_frames = 0
    for row in test.cast_column("video", datasets.Video(decode=False)):
        transform = PAPER_EVALUATION_SIZE.transform(row["height"], row["width"])
        frames = np.stack(list(iter_frames(row["video"]["bytes"], transform)))
        frames = np.clip(frames.astype(np.int16) + rng.integers(-4, 5, frames.shape), 0, 255).astype(np.uint8)
        write_video(child_path(predictions, row["clip_id"], ".mp4", what="clip id"), frames, fps=row["fps"])
        num_frames += len(frames)
    return dataset_dir, predictions, num_frames


def bench_evaluate(work: Path, num_clips: int, seconds: float, repeats: int) -> list[list[str]]:
    """``evaluate_submission`` (SSIM + PSNR) against the PyAV + scikit-image loop, at 1 thread and the default
    count, for 1920x1080 and 640x384 ground truth."""
    from benchmark.scoring import evaluate_submission

    default_threads = torch.get_num_threads()
    rows = []
    for width, height in ((1920, 1080), (640, 384)):
        dataset_dir, predictions, num_frames = make_evaluation_set(work, num_clips, seconds, width, height)
        cache = work / "cache"

        def ours(dataset_dir=dataset_dir, predictions=predictions, cache=cache):
            results, _ = evaluate_submission(
                str(dataset_dir), predictions, metrics=("ssim", "psnr"), progress=False, cache_dir=str(cache)
            )
            assert results.complete and results.evaluation_size == PAPER_EVALUATION_SIZE
            return {r["clip_id"]: (r["psnr"], r["ssim"]) for r in results.per_clip}

        for threads in sorted({1, default_threads}):
            torch.set_num_threads(threads)
            ours()  # warm-up: the datasets cache, the compiled kernel at this thread count
            times = {"ours": [], "baseline": []}
            cpu = {"ours": [], "baseline": []}
            for _ in range(repeats):
                baseline_values, seconds_taken, cpu_taken = timed(
                    pyav_skimage_loop, dataset_dir, predictions, threads, cache
                )
                times["baseline"].append(seconds_taken)
                cpu["baseline"].append(cpu_taken)
                our_values, seconds_taken, cpu_taken = timed(ours)
                times["ours"].append(seconds_taken)
                cpu["ours"].append(cpu_taken)
            diff = max(np.abs(np.subtract(our_values[c], baseline_values[c])).max() for c in our_values)
            ours_fps = num_frames / np.median(times["ours"])
            base_fps = num_frames / np.median(times["baseline"])
            cpu_speedup = np.median(cpu["baseline"]) / np.median(cpu["ours"]) if threads == 1 else None
            rows.append([
                (f"`evaluate` SSIM+PSNR, ground truth {width}x{height} -> 640x384, {threads} thread(s): ours vs "
                 f"PyAV + scikit-image ({base_fps:.1f} frames/s)"),
                f"{ours_fps:.1f}", f"{ours_fps / base_fps:.1f}x",
                f"{cpu_speedup:.1f}x" if cpu_speedup else "-", f"{diff:.1e}",
            ])  # fmt: skip
    torch.set_num_threads(default_threads)
    return rows


#: The sections of the benchmark, (a) to (e) of the module docstring.
SECTIONS = ("kernel", "fvd", "sync", "warmup", "evaluate")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and clips (smoke run)")
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(SECTIONS),
        help=f"comma-separated sections to run, of {','.join(SECTIONS)} (default: all)",
    )
    args = parser.parse_args(argv)
    if args.only - set(SECTIONS):
        parser.error(
            f"--only: unknown section(s) {sorted(args.only - set(SECTIONS))}, expected some of {SECTIONS}"
        )
    frames, repeats, fvd_clips, sync_clips, eval_clips, eval_seconds = (
        (8, 1, 1, 2, 8, 0.64) if args.quick else (32, 3, 2, 6, 8, 2.0)
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    started = time.perf_counter()
    rows, notes = [], []
    if "kernel" in args.only:
        rows += bench_frame_metrics(frames, repeats, devices)
    if "fvd" in args.only:
        rows += bench_fvd_features(fvd_clips, devices)
    with tempfile.TemporaryDirectory() as work:
        if "sync" in args.only:
            sync_rows, sync_note = bench_speaker_sync(sync_clips, Path(work))
            rows += sync_rows
            notes.append(sync_note)
        if "warmup" in args.only:
            notes.append(bench_compile_warmup(Path(work)))
        if "evaluate" in args.only:
            rows += bench_evaluate(Path(work), eval_clips, eval_seconds, max(1, repeats - 1))

    print(
        f"## MIT metrics benchmark ({platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
        f"{', ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; load average "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    print(
        f"PSNR/SSIM on {frames} frames of 640x384, median of {repeats}; FVD on {fvd_clips} clips of 16 frames "
        f"(640x384 resized to 224x224); `evaluate` on the {eval_clips // 2} test clips of {eval_clips} synthetic "
        f"clips of {eval_seconds:g} s.\n"
    )
    print(
        "| what | frames/s | speed-up (wall) | speed-up (CPU time, 1 thread) | max abs diff vs scikit-image |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for note in notes:
        print(f"\n{note}")
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    sys.exit(main())

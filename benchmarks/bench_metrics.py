"""Benchmark of the MIT metrics. Prints a markdown table; every figure comes from this one run.

    python benchmarks/bench_metrics.py            # about 1-3 min on a 2-core machine
    python benchmarks/bench_metrics.py --quick    # fewer frames (smoke run)

(a) PSNR + SSIM (Gaussian RGB) throughput, frames/s, of the vectorised torch implementation
    (:func:`benchmark.video_metrics.psnr_frames` / ``ssim_frames``, eager and ``compile=True``) against
    scikit-image's per-frame loop on the same frames at the paper's 640x384, and the largest difference between
    their values. Target: >= 5x, equal. Timed alternately, repetition by repetition, so machine load affects
    all alike.
(b) FVD feature extraction frames/s (preprocessing + a random-init full-size InceptionI3d, 16-frame clips at
    224x224), on CPU and on CUDA when available.
(c) Speaker sync on synthetic MIT clips: frames/s, and the separation of ground-truth speaking scores from
    swapped ones (what ``tests/benchmark/test_speaker_sync.py`` asserts).
(d) ``mit-bench``'s ``evaluate_submission`` scoring a ground-truth submission of a synthetic test split
    (SSIM, PSNR, speaker sync; FVD needs a real I3D file and is left out), total seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmark.fvd import preprocess_clips
from benchmark.i3d import InceptionI3d
from benchmark.speaker_sync import score_video
from benchmark.video_metrics import psnr_frames, ssim_frames
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


def skimage_frames(pred, ref):
    psnr = [peak_signal_noise_ratio(r, p, data_range=255) for p, r in zip(pred, ref)]
    ssim = [
        structural_similarity(
            r,
            p,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        for p, r in zip(pred, ref)
    ]
    return np.array(psnr), np.array(ssim)


def torch_frames(pred, ref, device, compile=False, chunk=16):
    psnr, ssim = [], []
    for start in range(0, len(pred), chunk):
        p = torch.from_numpy(pred[start : start + chunk]).to(device)
        r = torch.from_numpy(ref[start : start + chunk]).to(device)
        psnr.append(psnr_frames(p, r, compile=compile).cpu())
        ssim.append(ssim_frames(p, r, compile=compile).cpu())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return torch.cat(psnr).numpy(), torch.cat(ssim).numpy()


def bench_frame_metrics(num_frames: int, repeats: int, devices) -> tuple[list[list[str]], str]:
    """scikit-image (one thread) against torch on CPU with one thread (the same resources), with torch's
    default thread count, compiled (``ssim_frames(compile=True)``, one thread and the default count), and on CUDA when available;
    timed alternately, repetition by repetition, after a warm-up (which includes the one-off compilation)."""
    pred, ref = textured_pair(num_frames)
    default_threads = torch.get_num_threads()
    cpu = torch.device("cpu")
    variants = {"cpu, 1 thread": (cpu, 1, False)}
    if default_threads > 1:
        variants[f"cpu, {default_threads} threads"] = (cpu, default_threads, False)
    variants["cpu, 1 thread, torch.compile"] = (cpu, 1, True)
    if default_threads > 1:
        variants[f"cpu, {default_threads} threads, torch.compile"] = (cpu, default_threads, True)
    variants.update({d.type: (d, default_threads, False) for d in devices if d.type != "cpu"})
    compile_seconds = 0.0
    for device, threads, compiled in variants.values():  # warm-up: kernels, allocator, compilation
        torch.set_num_threads(threads)
        start = time.perf_counter()
        torch_frames(pred[:1], ref[:1], device, compiled)
        compile_seconds = max(compile_seconds, time.perf_counter() - start) if compiled else compile_seconds
    times = {"skimage": [], **{name: [] for name in variants}}
    values = {}
    for _ in range(repeats):
        start = time.perf_counter()
        values["skimage"] = skimage_frames(pred, ref)
        times["skimage"].append(time.perf_counter() - start)
        for name, (device, threads, compiled) in variants.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            values[name] = torch_frames(pred, ref, device, compiled)
            times[name].append(time.perf_counter() - start)
    torch.set_num_threads(default_threads)
    base_fps = num_frames / np.median(times["skimage"])
    rows = [["PSNR+SSIM, scikit-image per-frame loop (cpu, 1 thread)", f"{base_fps:.1f}", "1.0x", "-"]]
    for name in variants:
        fps = num_frames / np.median(times[name])
        diff = max(np.abs(values[name][i] - values["skimage"][i]).max() for i in range(2))
        rows.append(
            [f"PSNR+SSIM, torch vectorised ({name})", f"{fps:.1f}", f"{fps / base_fps:.1f}x", f"{diff:.1e}"]
        )
    note = (
        f"torch.compile's one-off compilation (first 640x384 frame, excluded above): {compile_seconds:.0f} s."
    )
    return rows, note


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

    rows = [["Speaker sync, synthetic 256x144 clips (cpu)", f"{frames / elapsed:.1f}", "-", "-"]]
    note = (
        f"Speaker sync on {num_clips} synthetic clips (seed 0): ground truth {mean(truth, 'speaker_sync'):.3f} "
        f"(false talking {mean(truth, 'false_talking_rate'):.3f}); speaking scores swapped between persons "
        f"{mean(swapped, 'speaker_sync'):.3f} (false talking {mean(swapped, 'false_talking_rate'):.3f})."
    )
    return rows, note


def bench_runner(num_clips: int, work: Path) -> str:
    try:
        from benchmark.scoring import evaluate_submission
    except ImportError as error:  # the runner is optional for this script
        return f"mit-bench runner not available ({error})"
    import datasets

    from mit_dataset.hub import write_synthetic_dataset

    dataset_dir = write_synthetic_dataset(work / "dataset", num_clips=num_clips, seed=0, progress=False)
    test = datasets.load_dataset(str(dataset_dir), split="test", cache_dir=str(work / "cache"))
    predictions = work / "predictions"
    predictions.mkdir()
    for row in test.cast_column("video", datasets.Video(decode=False)):
        child_path(predictions, row["clip_id"], ".mp4", what="clip id").write_bytes(row["video"]["bytes"])
    start = time.perf_counter()
    results, _report = evaluate_submission(
        str(dataset_dir),
        predictions,
        metrics=("ssim", "psnr", "speaker_sync"),
        progress=False,
        cache_dir=str(work / "cache"),
    )
    elapsed = time.perf_counter() - start
    assert results.complete and len(results.per_clip) == len(test), (
        "the ground-truth submission must score fully"
    )
    return (
        f"`evaluate_submission` on the synthetic test split ({len(test)} of {num_clips} clips, 256x144, 3 s; "
        f"ground truth as predictions; SSIM, PSNR, speaker sync): {elapsed:.1f} s in total "
        f"({elapsed / max(len(test), 1):.2f} s per clip)."
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and clips (smoke run)")
    args = parser.parse_args(argv)
    frames, repeats, fvd_clips, sync_clips, runner_clips = (
        (8, 1, 1, 2, 4) if args.quick else (32, 3, 2, 6, 12)
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])

    started = time.perf_counter()
    rows, compile_note = bench_frame_metrics(frames, repeats, devices)
    rows += bench_fvd_features(fvd_clips, devices)
    with tempfile.TemporaryDirectory() as work:
        sync_rows, sync_note = bench_speaker_sync(sync_clips, Path(work))
        rows += sync_rows
        runner_note = bench_runner(runner_clips, Path(work))

    print(
        f"## MIT metrics benchmark ({platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
        f"{', ' + torch.cuda.get_device_name() if torch.cuda.is_available() else ''})\n"
    )
    print(
        f"PSNR/SSIM on {frames} frames of 640x384, median of {repeats}; FVD on {fvd_clips} clips of 16 frames "
        "(640x384 resized to 224x224).\n"
    )
    print("| what | frames/s | speed-up | max abs diff vs scikit-image |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{compile_note}\n\n{sync_note}\n\n{runner_note}\n\nTotal benchmark time: {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of ``covog train`` (training/loop.py). Prints a markdown table; every figure comes from this one run.

    python benchmarks/bench_train.py            # a few minutes on a 2-core CPU
    python benchmarks/bench_train.py --quick    # smoke run (also checks the CUDA row's code on a tiny CPU model)

(a) Data loader: steps/s of the stage 2 loop (tiny CovOG, 8-frame clips at 128x224, batch 2) fed by the real
    training view in a DataLoader with 2 workers, against the same loop fed from batches already in memory (the
    same batches, collated beforehand). Target: ratio >= 0.9 (the loader is not the bottleneck).
(b) Peak memory of the same loop with and without gradient checkpointing (peak RSS growth during training on
    the CPU, each run in a fresh subprocess; ``torch.cuda.max_memory_allocated`` on CUDA).
(c) CUDA only: one full-size stage 2 training step (SD1.5-sized UNets, random weights, 640x384, 15 frames,
    batch 1, bf16, gradient checkpointing) against the same step of the same UNets without MPE and IAD (joint
    pose guider, no audio drivers). Target: <= 1.15x. Printed as skipped without CUDA.

Steps/s exclude the first step (warm-up) and come from ``train()``'s own summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch

SIZE = (128, 224)  # training height, width (multiples of 16 for the tiny UNets)
FRAMES = 8


def make_dataset(folder: Path, clips: int, seconds: float) -> Path:
    from mit_dataset.hub import write_dataset_folder
    from mit_dataset.synthetic import generate_records

    records = generate_records(
        folder / "raw", clips, seed=0, width=256, height=144, seconds=seconds, progress=False
    )
    return write_dataset_folder(records, folder / "mit", progress=False)


def config_for(dataset: Path, out: Path, steps: int, checkpointing: bool, workers: int):
    from training.config import load_config

    return load_config(
        Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny-stage2.yaml",
        [
            f"data.dataset={dataset}", f"output.dir={out}", f"data.height={SIZE[0]}", f"data.width={SIZE[1]}",
            f"data.num_frames={FRAMES}", f"data.num_workers={workers}", f"training.max_steps={steps}",
            f"output.checkpointing_steps={steps}", "output.validation_steps=0", "output.validation_frames=2",
            "output.validation_inference_steps=1", f"model.gradient_checkpointing={str(checkpointing).lower()}",
        ],
    )  # fmt: skip


def _first_batch(items):
    return items[0]


def in_memory_loader(config, steps: int):
    """A DataLoader over ``steps`` batches collated beforehand by the real view (one worker-free pass)."""
    from torch.utils.data import DataLoader

    from training.components import load_pipeline
    from training.data import build_loader, build_view, load_split, view_audio_context

    split, _ = load_split(config.data.dataset, None, "train")
    context = view_audio_context(load_pipeline(config.model.pretrained), config)
    view = build_view(split, config, config.training.seed, context)
    batches = []
    while len(batches) < steps:
        for batch in build_loader(view, config.training.batch_size, 0, 1):
            batches.append(batch)
            if len(batches) == steps:
                break
    return DataLoader(batches, batch_size=1, shuffle=False, collate_fn=_first_batch)


def rss_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(spec: dict) -> dict:
    """One measured training run (in its own process)."""
    from training.loop import train

    torch.set_num_threads(spec["threads"])
    config = config_for(
        Path(spec["dataset"]), Path(spec["out"]), spec["steps"], spec["checkpointing"], spec["workers"]
    )
    loader = in_memory_loader(config, spec["steps"]) if spec["memory"] else None
    before = rss_mb()
    result = train(config, dataloader=loader)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"steps_per_s": result["steps_per_s"], "peak_growth_mb": peak - before}


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"worker {spec} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ CUDA row


def full_size_step_ratio(device: str, dtype: torch.dtype, tiny: bool, rounds: int = 5) -> tuple[float, float]:
    """Seconds of one stage 2 training step (forward + backward of the DenoisingNet with MPE + IAD, reference
    bank written by the ReferenceNet) for CovOG and for the same UNets without MPE/IAD; fastest of ``rounds``."""
    from diffusers import UNet2DConditionModel

    from covog_diffusers.assemble import SD15_UNET_CONFIG
    from covog_diffusers.models import AudioProjection, CovOGDenoisingNet, MultiHumanPoseEncoder
    from covog_diffusers.tiny import tiny_configs
    from training.network import CovOGTrainingModel

    if tiny:
        configs = tiny_configs()
        height, width, frames = 32, 64, 4
        unet, ref = configs["denoising_unet"], configs["reference_unet"]
        pose, audio = configs["pose_guider"], configs["audio_projection"]
    else:  # SD1.5 sizes: the DenoisingNet's defaults are SD1.5 + AnimateDiff motion modules
        height, width, frames = 384, 640, 15
        unet, ref, pose, audio = {}, SD15_UNET_CONFIG, {}, {}
    torch.manual_seed(0)
    variants = {}
    for name, use_mpe_iad in (("covog", True), ("ablation", False)):
        # Each variant has its own ReferenceNet: a UNet carries one set of reference-attention processors.
        model = CovOGTrainingModel(
            UNet2DConditionModel(**ref).to(device, dtype).requires_grad_(False),
            CovOGDenoisingNet(**unet, use_iad=use_mpe_iad).to(device, dtype),
            MultiHumanPoseEncoder(**pose, joint=not use_mpe_iad).to(device, dtype),
            None,
            AudioProjection(**audio).to(device, dtype) if use_mpe_iad else None,
        )
        model.denoising_unet.enable_gradient_checkpointing()
        variants[name] = (model, use_mpe_iad)
    cfg = variants["covog"][0].denoising_unet.config
    h, w, persons = height // 8, width // 8, 2
    proj = variants["covog"][0].audio_projection.config

    def inputs(use_audio):
        x = {
            "noisy_latents": torch.randn(1, 4, frames, h, w, device=device, dtype=dtype),
            "timesteps": torch.tensor([500], device=device),
            "image_embeds": torch.randn(1, 1, cfg.cross_attention_dim, device=device, dtype=dtype),
            "reference_latents": torch.randn(1, 4, h, w, device=device, dtype=dtype),
            "keep_reference": torch.tensor([True]),
            "reference_pose_maps": torch.rand(1, persons, 3, height, width, device=device, dtype=dtype),
            "pose_maps": torch.rand(1, persons, frames, 3, height, width, device=device, dtype=dtype),
            "person_mask": torch.ones(1, persons, dtype=torch.bool, device=device),
        }
        if use_audio:
            neighbourhood = (2 * proj.window + 1, proj.num_layers, proj.feature_dim)
            x["audio_features"] = torch.randn(1, frames, *neighbourhood, device=device, dtype=dtype)
            x["speaking_scores"] = torch.rand(1, persons, frames, device=device, dtype=dtype) * 2 - 1
            x["face_masks"] = torch.rand(1, persons, frames, h, w, device=device, dtype=dtype)
        return x

    best = {name: float("inf") for name in variants}
    for _ in range(rounds):
        for name, (model, use_audio) in variants.items():
            batch = inputs(use_audio)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(**batch).float().pow(2).mean().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    for model, _ in variants.values():
        model.release()
    return best["covog"], best["ablation"]


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer steps and clips (smoke run)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per measured run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    steps = 4 if args.quick else args.steps
    print(
        f"# bench_train: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Enough clips that an epoch outlasts the measured steps (workers restart at each epoch, as with any
        # non-persistent DataLoader; on a real dataset an epoch is thousands of steps).
        dataset = make_dataset(Path(tmp), clips=8 if args.quick else 64, seconds=1.2 if args.quick else 2.0)
        spec = {"dataset": str(dataset), "steps": steps, "threads": args.threads, "checkpointing": False}
        real = run_worker({**spec, "out": f"{tmp}/real", "memory": False, "workers": 2})
        memory = run_worker({**spec, "out": f"{tmp}/memory", "memory": True, "workers": 0})
        ratio = real["steps_per_s"] / memory["steps_per_s"]
        rows.append(
            (
                "(a) loader, 2 workers vs in-memory batches",
                f"{real['steps_per_s']:.2f} vs {memory['steps_per_s']:.2f} steps/s = {ratio:.2f}",
                ">= 0.9",
            )
        )
        checkpointed = run_worker(
            {**spec, "out": f"{tmp}/gc", "memory": True, "workers": 0, "checkpointing": True}
        )
        rows.append(
            (
                "(b) peak RSS growth, no GC vs gradient checkpointing",
                f"{memory['peak_growth_mb']:.0f} vs {checkpointed['peak_growth_mb']:.0f} MB",
                "report",
            )
        )
    if torch.cuda.is_available():
        covog, ablation = full_size_step_ratio("cuda", torch.bfloat16, tiny=False)
        rows.append(
            (
                "(c) full-size stage 2 step, CovOG vs without MPE/IAD (CUDA bf16)",
                f"{covog * 1e3:.0f} vs {ablation * 1e3:.0f} ms = {covog / ablation:.2f}x",
                "<= 1.15x",
            )
        )
    else:
        rows.append(
            (
                "(c) full-size stage 2 step, CovOG vs without MPE/IAD (CUDA bf16)",
                "skipped: no CUDA device",
                "<= 1.15x",
            )
        )
        if args.quick:
            covog, ablation = full_size_step_ratio("cpu", torch.float32, tiny=True, rounds=2)
            rows.append(("(c') the same code, tiny model on the CPU (smoke)", f"{covog / ablation:.2f}x", ""))
    print(f"\n{steps} steps per run, stage 2 tiny CovOG, {FRAMES} frames at {SIZE[1]}x{SIZE[0]}, batch 2\n")
    print("| measure | figure | target |\n| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

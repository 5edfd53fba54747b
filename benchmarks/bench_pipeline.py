"""Benchmark of ``CovOGPipeline`` (tiny random-init config, CPU). Prints a markdown table; every figure comes
from this one run.

    python benchmarks/bench_pipeline.py            # about 1-3 min on a 2-core machine
    python benchmarks/bench_pipeline.py --quick    # smoke run

Inputs are a synthetic MIT clip (2 people, keypoints, mixed audio, speaking scores) generated on the fly.

(a) Pipeline overhead: wall time of a generation against the sum of the model calls it makes (every
    component's forward timed with hooks, the VAE's ``encode`` / ``decode`` with wrappers). Everything else is
    the pipeline's own work: input checks, pose / face-mask rendering, CLIP preprocessing, scheduler, CFG.
    Target: ratio < 1.10.
(b) Peak memory: peak RSS (``resource.getrusage`` maxrss) of a generation of 2x and of 8x ``window_frames``
    frames, each in a fresh subprocess, with frames returned at the end (``output_type="np"``) and streamed with
    ``frames_callback``. Target: the 8x peak within 10% of the 2x peak.
(c) Per-step cost of CovOG against the same DenoisingNet with MPE and IAD off (joint pose guider, no audio
    drivers): one DenoisingNet call (CFG batch of 2, one window), the pose encoder per window, and the
    pipeline's denoising step (time between step callbacks). Reported as ratios (CovOG / ablation); the two are
    timed alternately, round by round, and the fastest round of each counts, so machine load affects both alike.

(d) Defaults that finish: a whole 3 s synthetic clip (75 frames) generated with no size, steps, guidance or window
    arguments, i.e. at the tiny pipeline's ``generation_defaults`` (what ``covog generate`` does). Target: seconds.

Wall times on a shared or busy machine are noisy; the process-CPU-time ratios printed beside them are steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import torch

COMPONENTS = (
    "image_encoder",
    "vae",
    "pose_adaptor",
    "reference_unet",
    "audio_encoder",
    "audio_projection",
    "pose_guider",
    "denoising_unet",
)


# ------------------------------------------------------------------------------------------------ inputs


def clip_inputs(num_frames: int, height: int, width: int, seed: int = 0) -> dict:
    """Pipeline inputs from a synthetic 2-person MIT clip of at least ``num_frames`` frames."""
    from mit_dataset.features import speaking_score_from_raw
    from mit_dataset.keypoints import wholebody_to_mit
    from mit_dataset.synthetic.generator import build_scene, plan_clips, render_scene

    seconds = num_frames / 25.0 + 0.2
    spec = next(s for s in plan_clips(4, seed=seed, seconds=seconds) if s.num_people == 2)
    scene = build_scene(spec, 256, 144)
    reference = next(iter(render_scene(scene)))[0]
    keypoints = np.stack([wholebody_to_mit(track.keypoints_133) for track in scene.poses])[:, :num_frames]
    samples = round(num_frames / 25.0 * 16_000)
    return {
        "reference_image": reference,
        "reference_poses": keypoints[:, 0],
        "poses": keypoints,
        "audio": scene.audio[:samples],
        "sample_rate": 16_000,
        "speaking_scores": speaking_score_from_raw(scene.speaking_score_raw)[:, :num_frames],
        "keypoint_size": (144, 256),
        "height": height,
        "width": width,
    }


def tiny_pipeline(ablation: bool = False):
    from covog_diffusers.tiny import create_tiny_pipeline

    if ablation:  # MPE off (joint pose guider) and IAD off; everything else identical (same seed)
        pipe = create_tiny_pipeline(
            seed=0, randomize_zero_init=True, denoising_unet={"use_iad": False}, pose_guider={"joint": True}
        )
    else:
        pipe = create_tiny_pipeline(seed=0, randomize_zero_init=True)
    pipe.set_progress_bar_config(disable=True)  # this script prints its own table
    return pipe


# ------------------------------------------------------------------------------------------------ (a) overhead


class ComponentTimer:
    """Sum of wall time spent inside the top-level component calls of a pipeline."""

    def __init__(self, pipe):
        self.total = 0.0  # wall seconds
        self.total_cpu = 0.0  # process CPU seconds (all threads)
        self.per_component: dict[str, float] = {}
        self._handles, self._restore, self._depth, self._start, self._start_cpu = [], [], 0, 0.0, 0.0
        for name in COMPONENTS:
            module = getattr(pipe, name, None)
            if module is None:
                continue
            if name == "vae":  # the pipeline calls vae.encode / vae.decode, not forward
                for method in ("encode", "decode"):
                    self._wrap(module, method, name)
            else:
                self._handles.append(module.register_forward_pre_hook(self._pre(name)))
                self._handles.append(module.register_forward_hook(self._post(name)))

    def _enter(self):
        if self._depth == 0:
            self._start, self._start_cpu = time.perf_counter(), time.process_time()
        self._depth += 1

    def _exit(self, name):
        self._depth -= 1
        if self._depth == 0:
            elapsed = time.perf_counter() - self._start
            self.total += elapsed
            self.total_cpu += time.process_time() - self._start_cpu
            self.per_component[name] = self.per_component.get(name, 0.0) + elapsed

    def _pre(self, name):
        def hook(module, args):
            self._enter()

        return hook

    def _post(self, name):
        def hook(module, args, output):
            self._exit(name)

        return hook

    def _wrap(self, module, method, name):
        original = getattr(module, method)

        def wrapped(*args, **kwargs):
            self._enter()
            try:
                return original(*args, **kwargs)
            finally:
                self._exit(name)

        setattr(module, method, wrapped)
        self._restore.append((module, method))

    def reset(self):
        self.total, self.total_cpu, self.per_component = 0.0, 0.0, {}

    def remove(self):
        for handle in self._handles:
            handle.remove()
        for module, method in self._restore:
            delattr(module, method)  # back to the class method


def bench_overhead(args) -> dict:
    pipe = tiny_pipeline()
    inputs = clip_inputs(2 * args.window, args.height, args.width)
    kwargs = {
        "num_inference_steps": args.steps,
        "guidance_scale": 3.5,
        "window_frames": args.window,
        "overlap_frames": args.overlap,
        "output_type": "np",
    }
    pipe(**inputs, **kwargs, generator=torch.Generator().manual_seed(0))  # warm-up
    timer = ComponentTimer(pipe)
    ratios, cpu_ratios, walls, models = [], [], [], []
    for repeat in range(args.repeats):
        timer.reset()
        start, start_cpu = time.perf_counter(), time.process_time()
        pipe(**inputs, **kwargs, generator=torch.Generator().manual_seed(repeat))
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        walls.append(wall)
        models.append(timer.total)
        ratios.append(wall / timer.total)
        cpu_ratios.append(cpu / timer.total_cpu)
    shares = dict(timer.per_component)
    timer.remove()
    best = int(np.argmin(walls))  # the least disturbed repeat
    return {
        "frames": 2 * args.window,
        "wall_s": walls[best],
        "models_s": models[best],
        "ratio": ratios[best],
        "ratio_median": statistics.median(ratios),
        "cpu_ratio": statistics.median(cpu_ratios),
        "shares": {k: v / models[-1] for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
    }


# ------------------------------------------------------------------------------------------------ (b) memory


def child_memory(frames: int, args) -> dict:
    """Run in a fresh process: peak RSS before and after one generation of ``frames`` frames."""
    pipe = tiny_pipeline()
    inputs = clip_inputs(frames, args.height, args.width)
    kwargs = {
        "num_inference_steps": args.steps,
        "guidance_scale": 3.5,
        "window_frames": args.window,
        "overlap_frames": args.overlap,
        "output_type": "np",
        "generator": torch.Generator().manual_seed(0),
    }
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.stream:
        received = []
        pipe(**inputs, **kwargs, frames_callback=lambda start, chunk: received.append(chunk.shape[1]))
        count = sum(received)
    else:
        count = pipe(**inputs, **kwargs).frames.shape[1]
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if count != frames:
        raise RuntimeError(f"generated {count} frames, expected {frames}")
    return {"frames": frames, "before_kb": before, "peak_kb": after}


def bench_memory(args) -> list[dict]:
    rows = []
    for stream in (False, True):
        results = {}
        for factor in (2, 8):
            command = [
                sys.executable,
                __file__,
                "--child-memory",
                str(factor * args.window),
                "--height",
                str(args.height),
                "--width",
                str(args.width),
                "--window",
                str(args.window),
                "--overlap",
                str(args.overlap),
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
            ] + (["--stream"] if stream else [])
            output = subprocess.run(command, capture_output=True, text=True, check=False)
            if output.returncode != 0:
                raise RuntimeError(f"memory child failed:\n{output.stderr[-3000:]}")
            results[factor] = json.loads(output.stdout.strip().splitlines()[-1])
        rows.append({"stream": stream, **{f"x{k}": v for k, v in results.items()}})
    return rows


# ------------------------------------------------------------------------------------------------ (c) per step


def _timed(fn) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


@torch.no_grad()
def bench_per_step(args) -> dict:
    """CovOG and the ablation measured alternately, round after round (so machine load hits both alike); the
    fastest round of each counts (wall and process CPU time)."""
    from covog_diffusers.pipelines import VideoBatch, prepare_inputs

    pipes = {"covog": tiny_pipeline(), "ablation": tiny_pipeline(ablation=True)}
    inputs = clip_inputs(args.window, args.height, args.width)
    h, w = args.height // 8, args.width // 8
    calls = {}
    for name, pipe in pipes.items():
        prepared = prepare_inputs(
            inputs["reference_image"],
            inputs["reference_poses"],
            inputs["poses"],
            audio=inputs["audio"],
            sample_rate=16_000,
            speaking_scores=inputs["speaking_scores"],
            keypoint_size=inputs["keypoint_size"],
            height=args.height,
            width=args.width,
            vae_scale_factor=pipe.vae_scale_factor,
            max_speakers=pipe.denoising_unet.config.max_speakers,
            need_face_boxes=pipe.uses_audio,
        )
        conditions = pipe._window_conditions(
            VideoBatch([prepared]), 0, args.window, (h, w), "cpu", torch.float32, 1
        )
        conditions = {k: torch.cat([v, v]) for k, v in conditions.items()}  # CFG batch
        latents = torch.randn(2, 4, args.window, h, w)
        embeds = torch.randn(2, 1, pipe.image_encoder.config.projection_dim)
        maps = prepared.pose_maps_for(0, args.window)

        def unet(pipe=pipe, latents=latents, embeds=embeds, conditions=conditions):
            pipe.denoising_unet(
                latents, torch.tensor(500), encoder_hidden_states=embeds, return_dict=False, **conditions
            )

        def pose(pipe=pipe, maps=maps):
            pipe.pose_guider(maps)

        def steps(pipe=pipe):
            stamps = []

            def callback(pipe_, step, timestep, tensors):
                stamps.append((time.perf_counter(), time.process_time()))
                return tensors

            pipe(
                **inputs,
                num_inference_steps=args.steps + 1,
                guidance_scale=3.5,
                window_frames=args.window,
                overlap_frames=0,
                output_type="latent",
                callback_on_step_end=callback,
                generator=torch.Generator().manual_seed(0),
            )
            walls = np.diff([s[0] for s in stamps])
            cpus = np.diff([s[1] for s in stamps])
            return float(np.min(walls)), float(np.min(cpus))

        calls[name] = {"unet": unet, "pose": pose, "steps": steps}
    results: dict[str, list] = {}
    for round_index in range(args.repeats + 1):  # round 0 warms up
        for name, call in calls.items():
            for what in ("unet", "pose"):
                timing = _timed(call[what])
                if round_index:
                    results.setdefault(f"{name}_{what}", []).append(timing)
            timing = call["steps"]()
            if round_index:
                results.setdefault(f"{name}_step", []).append(timing)
    return {key: (min(t[0] for t in values), min(t[1] for t in values)) for key, values in results.items()}


# ------------------------------------------------------------------------------------------------ (d) defaults


def bench_defaults(args) -> dict:
    """One 75-frame clip at the tiny pipeline's generation defaults (fastest of ``args.repeats`` runs)."""
    pipe = tiny_pipeline()
    inputs = clip_inputs(75, None, None)
    walls = []
    for repeat in range(max(1, min(args.repeats, 3))):
        start = time.perf_counter()
        frames = pipe(**inputs, output_type="np", generator=torch.Generator().manual_seed(repeat)).frames
        walls.append(time.perf_counter() - start)
    return {"wall_s": min(walls), "shape": frames.shape[1:4], **pipe.generation_defaults}


# ------------------------------------------------------------------------------------------------ report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repeats and steps")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--window", type=int, default=8, help="window_frames (the unit of video length)")
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per window")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: steadier timings on a shared CPU)"
    )
    parser.add_argument("--parts", default="abcd", help="which measures to run, e.g. 'ac' (default: abcd)")
    parser.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats, args.steps = 1, 2
    if args.child_memory is not None:
        print(json.dumps(child_memory(args.child_memory, args)))
        return

    started = time.perf_counter()
    overhead = bench_overhead(args) if "a" in args.parts else None
    memory = bench_memory(args) if "b" in args.parts else []
    step = bench_per_step(args) if "c" in args.parts else None
    defaults = bench_defaults(args) if "d" in args.parts else None

    print("# CovOGPipeline benchmark (tiny config, CPU)\n")
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.height}x{args.width}, 2 persons, window {args.window} "
        f"(overlap {args.overlap}), {args.steps} steps, CFG 3.5, {args.repeats} repeats (fastest shown)\n"
    )
    print("| measure | value | target |")
    print("| --- | --- | --- |")
    if overhead:
        print(
            f"| (a) pipeline wall / sum of model calls ({overhead['frames']} frames) | "
            f"{overhead['wall_s']:.2f} s / {overhead['models_s']:.2f} s = **{overhead['ratio']:.3f}** "
            f"(median {overhead['ratio_median']:.3f}; CPU time {overhead['cpu_ratio']:.3f}) | < 1.10 |"
        )
    for row in memory:
        x2, x8 = row["x2"], row["x8"]
        mode = "streamed (frames_callback)" if row["stream"] else "returned (output_type=np)"
        ratio = x8["peak_kb"] / x2["peak_kb"]
        print(
            f"| (b) peak RSS, {x2['frames']} vs {x8['frames']} frames, {mode} | "
            f"{x2['peak_kb'] / 1024:.0f} MiB vs {x8['peak_kb'] / 1024:.0f} MiB = **{ratio:.3f}** "
            f"(growth during generation: {(x2['peak_kb'] - x2['before_kb']) / 1024:.0f} vs "
            f"{(x8['peak_kb'] - x8['before_kb']) / 1024:.0f} MiB) | within 10% |"
        )
    for key, label in (
        ()
        if step is None
        else (
            ("unet", "DenoisingNet call (CFG batch 2, one window)"),
            ("pose", "pose encoder per window (MPE: 2 persons; off: joint map)"),
            ("step", "pipeline denoising step (between step callbacks)"),
        )
    ):
        (covog_wall, covog_cpu), (ablation_wall, ablation_cpu) = step[f"covog_{key}"], step[f"ablation_{key}"]
        print(
            f"| (c) {label}, CovOG vs MPE+IAD off | CPU {covog_cpu * 1e3:.1f} ms vs {ablation_cpu * 1e3:.1f} ms = "
            f"**{covog_cpu / ablation_cpu:.2f}x** (wall {covog_wall / ablation_wall:.2f}x) | |"
        )
    if defaults:
        frames, height, width = defaults["shape"]
        print(
            f"| (d) whole clip at the pipeline's defaults ({frames} frames, {height}x{width}, "
            f"{defaults['num_inference_steps']} steps, guidance {defaults['guidance_scale']:g}, windows of "
            f"{defaults['window_frames']}) | **{defaults['wall_s']:.1f} s** | seconds |"
        )
    if overhead:
        shares = ", ".join(f"{name} {share:.0%}" for name, share in overhead["shares"].items())
        print(f"\nModel time by component in (a): {shares}.")
    print(f"Total benchmark time: {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()

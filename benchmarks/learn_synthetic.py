"""Does the paper's recipe learn, and do its ablations hold? CovOG, CovOG without MPE and CovOG without IAD
trained on the synthetic MIT train split with the same budget and seed, then scored with ``mit-bench evaluate``
on the synthetic test split next to the untrained model. Prints a markdown table; every figure comes from one run.

    python benchmarks/learn_synthetic.py --out outputs/learn_synthetic                 # the README's run
    python benchmarks/learn_synthetic.py --out /tmp/ls --stage1-steps 4 --stage2-steps 2 --quick   # smoke run

Setup (the shipped model's recipe, ``training/recipes/covog-tiny-synthetic``, at a smaller budget):

* data: ``mit-talking synth --num-clips 32 --seed 1 --width 128 --height 72 --seconds 4`` for training; the
  same plan cut to 16-frame clips (``--seconds 0.64``: one generation window, one FVD clip) for scoring, whose
  test split has 6 easy clips (seen identities) and 6 challenging ones (unseen identities, heated turn-taking);
* every model starts from ``covog create-tiny --seed 0 --component-config components.json`` with the same
  fitted, frozen VAE (``--vae``; default the shipped model's);
* **CovOG**: stage 1 then stage 2 (``covog train``, the recipe's ``stage1.yaml`` / ``stage2.yaml`` with
  ``training.max_steps`` overridden and uniform loss weights, ``training.snr_gamma=null``: the objective of the
  recipe's ``stage1b.yaml``, which says why min-SNR starves a from-scratch model); **w/o MPE**: the same with AnimateAnyone's joint pose guider and adaptor (``joint=True``: the
  persons' maps composited and encoded once), its own stage 1 and stage 2; **w/o IAD**: CovOG's stage 1
  (identical: the IADs are idle in stage 1, which has no audio) then stage 2 of a DenoisingNet built with
  ``use_iad=False``, so the ablation differs only where the IAD is trained;
* **untrained**: CovOG's initial pipeline (random UNets and pose encoders, fitted VAE);
* scoring: ``mit-bench predict`` at 128x72 (same steps, guidance and seed for all) and ``evaluate`` at the
  evaluation size 128x72 (SSIM, PSNR, speaker sync; FVD needs user-supplied I3D weights: ``--i3d`` or
  ``$MIT_BENCH_I3D``, else it is left out).

Every step is a resumable command in ``--out``; rerunning the script continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "training" / "recipes" / "covog-tiny-synthetic"
MODELS = ("untrained", "CovOG", "CovOG w/o MPE", "CovOG w/o IAD")
METRICS = ("ssim", "psnr", "fvd", "speaker_sync")
#: What the paper's Table 2 says removing each part does (all test): every metric gets worse.
PAPER = {
    "CovOG": {"ssim": 0.64, "psnr": 19.69, "fvd": 307.35},
    "CovOG w/o MPE": {"ssim": 0.63, "psnr": 19.44, "fvd": 323.96},
    "CovOG w/o IAD": {"ssim": 0.63, "psnr": 19.46, "fvd": 330.80},
}
HIGHER_IS_BETTER = {"ssim": True, "psnr": True, "fvd": False, "speaker_sync": True}


def run(*command: str, log: Path) -> float:
    """Run a CLI command (this repository first on the path), appending its output to ``log``; CPU seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("OMP_NUM_THREADS", "1")
    print("$", " ".join(command), flush=True)
    before = os.times()
    with log.open("a") as stream:
        subprocess.run(command, env=env, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT, check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def cli(program: str) -> list[str]:
    return [sys.executable, "-m", "mit_talk.cli", program]


def without_iad(source: Path, out: Path) -> None:
    """``source`` pipeline with a DenoisingNet built with ``use_iad=False`` (same weights otherwise) and no audio
    components (the "without IAD" model)."""
    from covog_diffusers import CovOGPipeline
    from covog_diffusers.models import CovOGDenoisingNet
    from mit_dataset.atomic import atomic_path

    pipe = CovOGPipeline.from_pretrained(source)
    unet = CovOGDenoisingNet.from_config(pipe.denoising_unet.config, use_iad=False)
    missing, unexpected = unet.load_state_dict(pipe.denoising_unet.state_dict(), strict=False)
    if missing or any(not name.startswith("audio_drivers.") for name in unexpected):
        raise RuntimeError(f"unexpected weight mismatch: missing {missing}, unexpected {unexpected}")
    pipe = CovOGPipeline(
        **{**pipe.components, "denoising_unet": unet, "audio_encoder": None, "audio_projection": None}
    )
    with atomic_path(out, directory=True) as tmp:
        pipe.save_pretrained(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder (resumable)")
    parser.add_argument("--stage1-steps", type=int, default=300, help="stage 1 optimizer steps per model")
    parser.add_argument("--stage2-steps", type=int, default=150, help="stage 2 optimizer steps per model")
    parser.add_argument(
        "--vae", type=Path, default=None, help="AutoencoderKL folder (default: the shipped model's)"
    )
    parser.add_argument("--steps", type=int, default=10, help="denoising steps when generating")
    parser.add_argument("--guidance-scale", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0, help="training and generation seed")
    parser.add_argument("--i3d", default=None, help="I3D file for FVD (default: $MIT_BENCH_I3D; else no FVD)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 clips, 2-frame stage 2")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    cpu = json.loads((out / "cpu_seconds.json").read_text()) if (out / "cpu_seconds.json").is_file() else {}
    started = time.perf_counter()

    def step(name: str, done: Path, *command: str) -> None:
        if not done.exists():
            cpu[name] = cpu.get(name, 0.0) + run(*command, log=log)
            (out / "cpu_seconds.json").write_text(json.dumps(cpu, indent=2))

    clips, seconds = ("8", "1.2") if args.quick else ("32", "4")
    synth = ["synth", "--num-clips", clips, "--seed", "1", "--width", "128", "--height", "72"]
    step("data", out / "train-data" / "README.md", *cli("mit-talking"), *synth, "--seconds", seconds,
         "--out", str(out / "train-data"))  # fmt: skip
    step("data", out / "eval-data" / "README.md", *cli("mit-talking"), *synth, "--seconds", "0.64",
         "--out", str(out / "eval-data"))  # fmt: skip
    vae = args.vae
    if vae is None:
        from covog_diffusers.pretrained import default_pipeline_path

        vae = default_pipeline_path() / "vae"
    joint = out / "joint-components.json"
    components = json.loads((RECIPE / "components.json").read_text())
    for name in ("pose_guider", "pose_adaptor"):
        components[name] = {**components[name], "joint": True}
    joint.write_text(json.dumps(components, indent=2))
    init = {"CovOG": out / "init", "CovOG w/o MPE": out / "init-joint"}
    for name, config in (("CovOG", RECIPE / "components.json"), ("CovOG w/o MPE", joint)):
        step("init", init[name] / "model_index.json", *cli("covog"), "create-tiny", str(init[name]),
             "--seed", str(args.seed), "--component-config", str(config), "--vae", str(vae))  # fmt: skip

    def train(stage: int, name: str, start: Path, run_dir: Path) -> Path:
        extra = ["data.num_frames=2", "training.batch_size=2"] if args.quick and stage == 2 else []
        steps = args.stage1_steps if stage == 1 else args.stage2_steps
        step(f"stage{stage} {name}", run_dir / "pipeline" / "model_index.json", *cli("covog"), "train",
             "--config", str(RECIPE / f"stage{stage}.yaml"), "--resume", "latest",
             f"model.pretrained={start}", f"data.dataset={out / 'train-data'}", f"output.dir={run_dir}",
             f"training.max_steps={steps}", f"training.seed={args.seed}", "training.snr_gamma=null",
             "output.checkpointing_steps=50",
             "output.report_to=none", "output.validation_frames=8", "output.validation_inference_steps=4",
             *extra)  # fmt: skip
        return run_dir / "pipeline"

    final = {"untrained": init["CovOG"]}
    stage1 = train(1, "CovOG", init["CovOG"], out / "CovOG-stage1")
    final["CovOG"] = train(2, "CovOG", stage1, out / "CovOG-stage2")
    joint_stage1 = train(1, "CovOG w/o MPE", init["CovOG w/o MPE"], out / "joint-stage1")
    final["CovOG w/o MPE"] = train(2, "CovOG w/o MPE", joint_stage1, out / "joint-stage2")
    if not (out / "no-iad-stage1" / "model_index.json").exists():
        without_iad(stage1, out / "no-iad-stage1")
    final["CovOG w/o IAD"] = train(2, "CovOG w/o IAD", out / "no-iad-stage1", out / "no-iad-stage2")

    from benchmark.protocol import EvaluationSize
    from benchmark.scoring import evaluate_submission

    results = {}
    for name in MODELS:
        predictions = out / "predictions" / name.replace(" ", "_").replace("/", "")
        step(f"predict {name}", predictions / "done", *cli("mit-bench"), "predict", "--model", str(final[name]),
             "--dataset", str(out / "eval-data"), "--out", str(predictions), "--steps", str(args.steps),
             "--height", "72", "--width", "128", "--eval-size", "128x72",
             "--guidance-scale", str(args.guidance_scale), "--seed", str(args.seed), "--no-progress")  # fmt: skip
        (predictions / "done").touch()
        scored, report = evaluate_submission(
            str(out / "eval-data"),
            predictions,
            model_name=name,
            i3d_path=args.i3d,
            progress=False,
            evaluation_size=EvaluationSize(height=72, width=128),  # the clips' own size
        )
        if not scored.complete:
            raise RuntimeError(f"{name}: incomplete submission\n{report.format()}")
        results[name] = scored
        scored.write_json(out / f"results-{predictions.name}.json")
    print(report_table(results, args, cpu, time.perf_counter() - started))


def report_table(results: dict, args, cpu: dict, seconds: float) -> str:
    """Markdown: per model and difficulty, each metric; then whether each ablation moved each metric the way
    the paper's Table 2 says (worse than CovOG)."""
    first = next(iter(results.values()))
    metrics = [m for m in METRICS if m in first.metrics]
    lines = [
        (
            f"stage 1: {args.stage1_steps} steps (batch 4), stage 2: {args.stage2_steps} steps (batch 2 x 8 "
            f"frames), seed {args.seed}; generation: {args.steps} DDIM steps, guidance {args.guidance_scale}; "
            f"{sum(cpu.values()) / 60:.1f} CPU min in commands, {seconds / 60:.1f} min wall this run"
        ),
        "",
        "| model | test | N | " + " | ".join(metrics) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in metrics) + " |",
    ]
    for name, scored in results.items():
        for difficulty in ("easy", "challenging", "all"):
            row = scored.row(difficulty, "all")
            values = " | ".join(f"{row[m]:.4f}" if row.get(m) is not None else "-" for m in metrics)
            lines.append(f"| {name} | {difficulty} | {row['n']} | {values} |")
    if first.skipped:
        lines += ["", "left out: " + "; ".join(f"{k}: {v}" for k, v in first.skipped.items())]
    lines += [
        "",
        "| ablation (all test) | " + " | ".join(metrics) + " |",
        "| --- | " + " | ".join("---" for _ in metrics) + " |",
    ]
    full = results["CovOG"].row("all", "all")
    for name in ("CovOG w/o MPE", "CovOG w/o IAD"):
        row, cells = results[name].row("all", "all"), []
        for m in metrics:
            delta = row[m] - full[m]
            worse = delta < 0 if HIGHER_IS_BETTER[m] else delta > 0
            cells.append(
                f"{delta:+.4f} ({'worse, as the paper' if worse else 'not worse: paper not reproduced'})"
            )
        lines.append(f"| {name} - CovOG | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

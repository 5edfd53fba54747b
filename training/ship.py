"""Ship a trained run: its pipeline with generation defaults and a model card that says how it was made.

``python -m training.ship --pipeline RUN/stage2/pipeline --recipe RECIPE_DIR --times RUN/times.txt --out DIR
--steps S --guidance-scale G`` writes ``DIR`` atomically: ``CovOGPipeline.save_pretrained`` after
``set_generation_defaults`` (the training size recorded by ``covog train``, and ``S`` / ``G``), and a README that
is the run's own card (``covog train``: command, data, steps, config) followed by a "Recipe" section: the recipe
folder's ``README.md``, every command of its ``train.sh``, the VAE's fit (``--vae-card``, written by ``covog
train-vae``) and each step's time (``times.txt``: ``name wall_s user_s sys_s`` per line, as train.sh's ``timed``
writes it). ``mit-bench evaluate --model-card DIR/README.md`` then adds the benchmark results as ``model-index``.
Used by ``training/recipes/covog-tiny-synthetic/train.sh``; refuses more than ``--max-mb`` of weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_times(path: Path) -> dict[str, tuple[float, float]]:
    """``{step: (wall_s, cpu_s)}`` from a times file (the parts of a resumed step are summed)."""
    times: dict[str, tuple[float, float]] = {}
    for number, line in enumerate(path.read_text().splitlines() if path.is_file() else [], start=1):
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"{path}:{number}: expected 'name wall_s user_s sys_s', got {line!r}")
        name, wall, user, system = parts
        old = times.get(name, (0.0, 0.0))
        times[name] = (old[0] + float(wall), old[1] + float(user) + float(system))
    return times


def recipe_section(recipe: Path, times: dict, defaults: dict, vae_card: Path | None = None) -> str:
    """The card's "Recipe" section (see the module docstring)."""
    commands = (recipe / "train.sh").read_text().split("set -euo pipefail", 1)[-1].strip()
    lines = ["", "## Recipe", "", (recipe / "README.md").read_text().split("\n", 1)[1].strip(), ""]
    lines += [f"Made by `bash {recipe}/train.sh` from the repository root (every step resumes):", ""]
    lines += ["```bash", commands, "```", ""]
    if vae_card is not None:
        fit = json.loads(vae_card.read_text().split("```json", 1)[1].split("```", 1)[0])["results"]
        test_psnr = fit.get("reconstruction_psnr_test", float("nan"))
        lines.append(
            f"VAE fit: {fit['steps']} steps; reconstruction PSNR {fit['reconstruction_psnr_train']:.2f} dB on "
            f"training frames, {test_psnr:.2f} dB on test frames; `scaling_factor` {fit['scaling_factor']:.4f} "
            "(1 / std of the latents)."
        )
        lines.append("")
    lines.append(
        f"Generation defaults (`pipe.generation_defaults`): {defaults['width']}x{defaults['height']}, "
        f"{defaults['num_inference_steps']} DDIM steps, guidance scale {defaults['guidance_scale']}."
    )
    lines.append("")
    if times:
        total = sum(cpu for _, cpu in times.values())
        lines += ["| step | wall (min) | CPU (min) |", "| --- | --- | --- |"]
        lines += [f"| {name} | {wall / 60:.1f} | {cpu / 60:.1f} |" for name, (wall, cpu) in times.items()]
        lines += ["", f"Total {total / 60:.1f} CPU minutes (wall time follows the machine's load).", ""]
    return "\n".join(lines)


def ship(
    pipeline: Path,
    recipe: Path,
    out: Path,
    num_inference_steps: int,
    guidance_scale: float,
    times: Path | None = None,
    vae_card: Path | None = None,
    max_bytes: int = 20_000_000,
) -> Path:
    """Write the shipped pipeline folder ``out`` (see the module docstring); returns ``out``."""
    from covog_diffusers import CovOGPipeline
    from mit_dataset.atomic import atomic_path

    pipe = CovOGPipeline.from_pretrained(pipeline)
    pipe.set_generation_defaults(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale)
    card = (pipeline / "README.md").read_text().rstrip("\n") + "\n"
    section = recipe_section(recipe, read_times(times) if times else {}, pipe.generation_defaults, vae_card)
    with atomic_path(out, directory=True) as tmp:
        pipe.save_pretrained(tmp)
        weights = sum(p.stat().st_size for p in tmp.rglob("*.safetensors"))
        if weights > max_bytes:
            raise ValueError(
                f"{pipeline} holds {weights / 1e6:.1f} MB of weights, more than {max_bytes / 1e6:g} MB"
            )
        (tmp / "README.md").write_text(card + section)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="a trained run's pipeline/ folder")
    parser.add_argument("--recipe", type=Path, required=True, help="recipe folder (README.md, train.sh)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced atomically)")
    parser.add_argument("--steps", type=int, required=True, help="default number of denoising steps")
    parser.add_argument("--guidance-scale", type=float, required=True, help="default guidance scale")
    parser.add_argument("--times", type=Path, default=None, help="times file of the recipe's steps")
    parser.add_argument("--vae-card", type=Path, default=None, help="README.md of the covog train-vae output")
    parser.add_argument("--max-mb", type=float, default=20.0, help="largest weight total allowed (MB)")
    args = parser.parse_args(argv)
    out = ship(
        args.pipeline, args.recipe, args.out, args.steps, args.guidance_scale, args.times, args.vae_card,
        int(args.max_mb * 1e6),
    )  # fmt: skip
    print(f"shipped {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

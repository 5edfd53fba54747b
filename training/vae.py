"""Fit a small :class:`diffusers.AutoencoderKL` to the frames of an MIT dataset (``covog train-vae``).

No pretrained VAE can be downloaded here and a random one decodes noise, so the CovOG that ships with the
package gets its own VAE, fitted to synthetic MIT frames first and then frozen (as SD1.5's VAE is in CovOG).

Recipe (the LDM autoencoder objective without its perceptual and adversarial terms, which need pretrained
networks): per sample, the summed L1 reconstruction error plus ``kl_weight`` times the KL divergence of the
posterior from N(0, I), with LDM's ``kl_weight = 1e-6`` (Rombach et al. 2022, ``autoencoder_kl_*`` configs).
Both sums are divided by the number of pixel values so the logged loss reads as a mean absolute error.

Training sees random ``crop_size`` crops of the frames: the VAE is built without the mid-block attention
(``mid_block_add_attention=False``), so it is fully convolutional and a crop costs what its pixels cost
(a whole 128x72 frame costs 2.25 times a 64x64 crop). Frames are brought to ``height x width`` with the
project's one geometry (:class:`mit_dataset.geometry.FrameTransform.cover`) and held in memory as uint8.

After training, ``scaling_factor`` is set to ``1 / std`` of the posterior means over the training frames, the
way SD derived its 0.18215, so that scaled latents have unit variance for the diffusion model. The folder
written is a plain ``AutoencoderKL.from_pretrained`` folder plus a README with the recipe and the
reconstruction PSNR on the test split.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .checkpointing import check_resumable, resolve_resume, save_checkpoint

#: Value of ``kl_weight`` in LDM's KL autoencoder configs.
LDM_KL_WEIGHT = 1e-6


@dataclass
class VAETrainingConfig:
    """Everything ``covog train-vae`` reads from its YAML file (unknown keys are an error)."""

    dataset: str = ""  # MIT dataset folder (load_dataset); frames of `train_split` are fitted
    output_dir: str = ""  # where checkpoints/ and the final AutoencoderKL folder (vae/) go
    train_split: str = "train"
    eval_split: str | None = "test"  # reconstruction PSNR reported on it (None: skip)
    height: int = 72
    width: int = 128
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16
    crop_size: int = 64
    batch_size: int = 8
    max_steps: int = 2000
    learning_rate: float = 1e-3
    lr_warmup_steps: int = 100
    adam_weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    kl_weight: float = LDM_KL_WEIGHT
    seed: int = 0
    mixed_precision: str = "no"
    checkpointing_steps: int = 500
    checkpoints_total_limit: int = 2
    logging_steps: int = 50
    num_threads: int | None = None  # torch intra-op threads (None: torch's default)
    eval_frames: int = 256  # evenly spaced frames for the scaling factor and each reconstruction PSNR

    def validate(self) -> VAETrainingConfig:
        if not self.dataset or not self.output_dir:
            raise ValueError("config: 'dataset' and 'output_dir' are required")
        factor = 2 ** (len(self.block_out_channels) - 1)
        for name in ("height", "width", "crop_size"):
            value = getattr(self, name)
            if value <= 0 or value % factor:
                raise ValueError(
                    f"config: {name}={value} must be a positive multiple of the VAE's downsampling factor {factor}"
                )
        if self.crop_size > min(self.height, self.width):
            raise ValueError(
                f"config: crop_size={self.crop_size} is larger than the frame ({self.height}x{self.width})"
            )
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"config: block_out_channels {self.block_out_channels} must be multiples of norm_num_groups "
                f"{self.norm_num_groups}"
            )
        for name in ("batch_size", "max_steps", "checkpointing_steps", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"config: {name} must be positive, got {getattr(self, name)}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict | None = None) -> VAETrainingConfig:
        """Read ``path`` (a file, or a packaged config name: :func:`training.config.resolve_config_path`;
        ``yaml.safe_load``), apply ``overrides``, refuse unknown keys, validate."""
        import yaml

        from .config import resolve_config_path

        path = resolve_config_path(path)
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise TypeError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
        values.update(overrides or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config key(s) {unknown}; known: {sorted(known)}")
        return cls(**values).validate()


def decode_split_frames(split_dataset, height: int, width: int) -> torch.Tensor:
    """Every frame of every clip of a loaded MIT split, scaled to cover ``height x width`` and centre-cropped
    (:meth:`FrameTransform.cover`), as one uint8 tensor ``(N, 3, height, width)``."""
    from mit_dataset.frame_decoder import iter_frames
    from mit_dataset.geometry import FrameTransform
    from mit_dataset.row_arrays import ROW_COLUMNS, clip_arrays

    table = split_dataset.with_format("arrow", columns=list(ROW_COLUMNS))
    frames = []
    for index in range(len(split_dataset)):
        clip = clip_arrays(table[index : index + 1])
        if clip.video_bytes is None:
            raise ValueError(f"clip {clip.clip_id!r}: the video has no embedded bytes")
        transform = FrameTransform.cover(clip.height, clip.width, height, width)
        frames += [
            torch.from_numpy(f.copy()) for f in iter_frames(clip.video_bytes.numpy(), transform, clip.clip_id)
        ]
    if not frames:
        raise ValueError("the split has no frames")
    return torch.stack(frames).permute(0, 3, 1, 2).contiguous()


class RandomCrops(Dataset):
    """Random ``size x size`` crops of uint8 frames ``(N, 3, H, W)`` as float ``(3, size, size)`` in [-1, 1],
    flipped horizontally half of the time; the crop of item ``i`` in epoch ``e`` is drawn from
    ``torch.Generator().manual_seed(hash((seed, e, i)))``, so it does not depend on worker assignment."""

    def __init__(self, frames: torch.Tensor, size: int, seed: int = 0):
        self.frames, self.size, self.seed, self.epoch = frames, int(size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, int(index))) % 2**63)
        _, height, width = self.frames.shape[1:]
        top = int(torch.randint(0, height - self.size + 1, (), generator=generator))
        left = int(torch.randint(0, width - self.size + 1, (), generator=generator))
        crop = self.frames[index, :, top : top + self.size, left : left + self.size]
        if torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        return crop.float() / 127.5 - 1.0


def build_vae(config: VAETrainingConfig):
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    return AutoencoderKL(
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        latent_channels=config.latent_channels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        sample_size=max(config.height, config.width),
        mid_block_add_attention=False,
    )


def vae_loss(
    vae, pixels: torch.Tensor, kl_weight: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict]:
    """``mean |x - x_rec| + kl_weight * KL / (3 H W)`` for pixels ``(B, 3, H, W)`` in [-1, 1] (module docstring);
    ``generator`` draws the posterior sample."""
    posterior = vae.encode(pixels).latent_dist
    reconstruction = vae.decode(posterior.sample(generator)).sample
    l1 = (reconstruction.float() - pixels.float()).abs().mean()
    kl = posterior.kl().mean() / pixels[0].numel()
    return l1 + kl_weight * kl, {"l1": l1.detach().item(), "kl": kl.detach().item()}


@torch.no_grad()
def encode_frames(vae, frames: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Posterior means ``(N, C, H/f, W/f)`` of uint8 frames ``(N, 3, H, W)``."""
    out = []
    for i in range(0, len(frames), batch_size):
        pixels = frames[i : i + batch_size].to(vae.device, vae.dtype) / 127.5 - 1.0
        out.append(vae.encode(pixels).latent_dist.mean.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def reconstruction_psnr(vae, frames: torch.Tensor, batch_size: int = 32) -> float:
    """Mean per-frame PSNR (dB, data range 1) of ``decode(posterior mean)`` against uint8 frames ``(N, 3, H, W)``."""
    values = []
    for i in range(0, len(frames), batch_size):
        chunk = frames[i : i + batch_size]
        pixels = chunk.to(vae.device, vae.dtype) / 127.5 - 1.0
        decoded = vae.decode(vae.encode(pixels).latent_dist.mean).sample.float().cpu()
        decoded = ((decoded / 2 + 0.5).clamp(0, 1) * 255).round() / 255
        mse = ((decoded - chunk.float() / 255) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        values.append(-10 * torch.log10(mse))
    return float(torch.cat(values).mean())


def _evenly_spaced(frames: torch.Tensor, count: int) -> torch.Tensor:
    if len(frames) <= count:
        return frames
    return frames[torch.linspace(0, len(frames) - 1, count).round().long()]


def train_vae(config: VAETrainingConfig, resume: str | None = None) -> Path:
    """Fit the VAE described by ``config``; returns the folder of the saved ``AutoencoderKL``
    (``output_dir/vae``). ``resume="latest"`` (or a checkpoint folder) continues an interrupted run."""
    import datasets
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    config.validate()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    output_dir = Path(config.output_dir)
    run_config = asdict(config)
    state = {
        "config": {k: v for k, v in run_config.items() if k != "num_threads"},
        "model_fingerprint": "vae",
    }
    resume_from = resolve_resume(resume, output_dir)
    step = 0
    if resume_from is not None:
        step = int(check_resumable(resume_from, state["config"], state["model_fingerprint"])["step"])

    # Data order is a function of (seed, epoch) (accelerate's seedable sampler), crops of (seed, epoch, item)
    # and posterior noise of (seed, step): a resumed run sees exactly what an uninterrupted one would.
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    set_seed(config.seed)
    frames = decode_split_frames(
        datasets.load_dataset(config.dataset, split=config.train_split), config.height, config.width
    )
    crops = RandomCrops(frames, config.crop_size, seed=config.seed)
    loader = DataLoader(crops, batch_size=config.batch_size, shuffle=True, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"{config.dataset}: {len(frames)} frames give no batch of {config.batch_size}")
    vae = build_vae(config)
    optimizer = torch.optim.AdamW(
        vae.parameters(), lr=config.learning_rate, weight_decay=config.adam_weight_decay
    )
    lr_scheduler = get_scheduler(
        "cosine", optimizer, num_warmup_steps=config.lr_warmup_steps, num_training_steps=config.max_steps
    )
    vae, optimizer, loader, lr_scheduler = accelerator.prepare(vae, optimizer, loader, lr_scheduler)
    accelerator.print(
        f"VAE: {sum(p.numel() for p in vae.parameters()):,} trainable parameters, {len(frames)} training frames "
        f"({config.height}x{config.width}), crops {config.crop_size}, batch {config.batch_size}"
    )

    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        accelerator.print(f"resumed from {resume_from} (step {step})")

    vae.train()
    start, cpu_start, running = time.perf_counter(), time.process_time(), []
    progress = tqdm(
        total=config.max_steps, initial=step, desc="train-vae", disable=not accelerator.is_main_process
    )
    while step < config.max_steps:
        epoch, done = divmod(step, len(loader))
        crops.set_epoch(epoch)
        loader.set_epoch(epoch)
        for pixels in accelerator.skip_first_batches(loader, done) if done else loader:
            noise = torch.Generator(pixels.device).manual_seed(hash((config.seed, step)) % 2**63)
            with accelerator.accumulate(vae):
                loss, parts = vae_loss(vae, pixels, config.kl_weight, noise)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(vae.parameters(), config.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            running.append(parts["l1"])
            progress.update()
            if step % config.logging_steps == 0 or step == config.max_steps:
                progress.set_postfix(l1=f"{np.mean(running):.4f}", kl=f"{parts['kl']:.3g}")
                running = []
            if step % config.checkpointing_steps == 0 and step < config.max_steps:
                save_checkpoint(accelerator, output_dir, step, state, config.checkpoints_total_limit)
            if step == config.max_steps:
                break
    progress.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    vae = accelerator.unwrap_model(vae).eval()
    sample = _evenly_spaced(frames, config.eval_frames)
    latents = encode_frames(vae, sample)
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    summary = {
        "steps": config.max_steps,
        "train_seconds_this_run": round(seconds, 1),
        "train_cpu_seconds_this_run": round(cpu_seconds, 1),
        "training_frames": len(frames),
        "eval_frames": len(sample),
        "latent_mean": float(latents.mean()),
        "latent_std": float(latents.std()),
        "scaling_factor": vae.config.scaling_factor,
        "reconstruction_psnr_train": reconstruction_psnr(vae, sample),
    }
    if config.eval_split:
        eval_frames = decode_split_frames(
            datasets.load_dataset(config.dataset, split=config.eval_split), config.height, config.width
        )
        summary[f"reconstruction_psnr_{config.eval_split}"] = reconstruction_psnr(
            vae, _evenly_spaced(eval_frames, config.eval_frames)
        )
    out = output_dir / "vae"
    if accelerator.is_main_process:
        _save(vae, out, run_config, summary)
        accelerator.print(json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    return out


def _save(vae, out: Path, run_config: dict, summary: dict) -> None:
    from mit_dataset.atomic import atomic_path

    card = "\n".join(
        [
            "---",
            "library_name: diffusers",
            "tags: [autoencoderkl, mit-talk]",
            "---",
            "# AutoencoderKL fitted to MIT frames",
            "",
            (
                "Made by `covog train-vae` (`training/vae.py`): L1 reconstruction + KL (weight "
                f"{run_config['kl_weight']:g}), {summary['steps']} steps of {run_config['batch_size']} random "
                f"{run_config['crop_size']}x{run_config['crop_size']} crops; `scaling_factor` = 1 / std of the "
                "training frames' posterior means."
            ),
            "",
            "```json",
            json.dumps({"config": run_config, "results": summary}, indent=2),
            "```",
            "",
        ]
    )
    with atomic_path(out, directory=True) as tmp:
        vae.save_pretrained(tmp)
        (tmp / "README.md").write_text(card)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--config", required=True, type=Path, help="YAML file, or a packaged config by name (tiny-vae)"
    )
    parser.add_argument("--dataset", default=None, help="MIT dataset folder (default: the config's)")
    parser.add_argument("--output-dir", default=None, help="run folder (default: the config's output_dir)")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps (default: the config's)")
    parser.add_argument(
        "--resume",
        default=None,
        help="'latest' (a fresh start when there is none) or a checkpoint folder (default: a fresh start)",
    )
    parser.set_defaults(run=run)
    return parser


def add_train_vae_command(subparsers) -> None:
    """Add ``train-vae`` to ``subparsers`` (the ``covog`` console script of :mod:`mit_talk.cli`)."""
    add_arguments(subparsers.add_parser("train-vae", help=__doc__.split("\n")[0], description=__doc__))


def run(args: argparse.Namespace) -> None:
    """The ``train-vae`` command: read the config, apply the options, train, say where the VAE is."""
    overrides = {
        key: value
        for key, value in (
            ("dataset", args.dataset),
            ("output_dir", args.output_dir),
            ("max_steps", args.max_steps),
        )
        if value is not None
    }
    print(f"wrote {train_vae(VAETrainingConfig.from_yaml(args.config, overrides), resume=args.resume)}")


def main(argv: list[str] | None = None) -> int:
    """``python -m training.vae --config X.yaml`` (also under ``accelerate launch``)."""
    parser = add_arguments(argparse.ArgumentParser(prog="covog train-vae", description=__doc__))
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

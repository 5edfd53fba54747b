"""The ``covog`` commands: make a tiny pipeline, assemble a full-size one from local checkpoints, generate a video.

covog create-tiny OUT
covog assemble --sd15 SD --vae VAE --image-encoder CLIP --wav2vec2 W2V --motion-module MM [--animate-anyone DIR] --out DIR
covog generate --model DIR --dataset DATASET_DIR --clip CLIP_ID --out x.mp4 [--steps --guidance-scale --num-frames ...]

``add_commands`` adds them to a sub-parser set; the console script (with the error rule) is composed in
``mit_talk.cli``.
"""

from __future__ import annotations

from pathlib import Path

_DTYPES = ("float32", "float16", "bfloat16")


def _add_create_tiny(subparsers) -> None:
    parser = subparsers.add_parser(
        "create-tiny", help="write a tiny random-initialised CovOG pipeline (tests, demos, benchmarks)"
    )
    parser.add_argument("out", type=Path, help="pipeline folder to create")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.add_argument(
        "--component-config",
        type=Path,
        help="JSON file of config changes to the tiny components (covog_diffusers.tiny.tiny_configs), e.g. "
        '{"denoising_unet": {"use_iad": false}, "pose_guider": {"block_out_channels": [8, 16, 32]}} '
        "(default: the tiny configs as they are)",
    )
    parser.add_argument(
        "--vae",
        type=Path,
        help="AutoencoderKL folder to use as the VAE, e.g. made by `covog train-vae` (default: the tiny "
        "random-initialised VAE)",
    )
    parser.set_defaults(run=_create_tiny)


def _add_assemble(subparsers) -> None:
    parser = subparsers.add_parser(
        "assemble",
        help="build a full-size CovOG pipeline folder from local pretrained checkpoints",
        description="Build a full-size CovOG pipeline folder from LOCAL checkpoints (nothing is downloaded). "
        "The SD 1.5 UNet initialises both the ReferenceNet and the DenoisingNet; AnimateAnyone weights, when "
        "given, override them. A report of loaded / missing / unmatched keys is printed and saved as "
        "assembly_report.json in the output folder.",
    )
    parser.add_argument(
        "--sd15",
        required=True,
        type=Path,
        help="SD 1.5: diffusers folder (pipeline or unet/) or one .safetensors/.ckpt (LDM layout)",
    )
    parser.add_argument("--vae", required=True, type=Path, help="sd-vae-ft-mse AutoencoderKL folder")
    parser.add_argument(
        "--image-encoder", required=True, type=Path, help="CLIPVisionModelWithProjection folder"
    )
    parser.add_argument("--wav2vec2", required=True, type=Path, help="wav2vec2-base-960h folder")
    parser.add_argument(
        "--motion-module",
        required=True,
        type=Path,
        help="AnimateDiff motion module (mm_sd_v15_v2.ckpt layout) or a diffusers MotionAdapter folder",
    )
    parser.add_argument(
        "--animate-anyone",
        type=Path,
        help="folder with AnimateAnyone denoising_unet.pth / reference_unet.pth / pose_guider.pth / "
        "motion_module.pth (any subset; default: none, the SD 1.5 + AnimateDiff initialisation)",
    )
    parser.add_argument(
        "--unet-config", type=Path, help="UNet config.json for a single-file --sd15 (default: SD 1.5)"
    )
    parser.add_argument(
        "--no-iad", action="store_true", help="build the 'without IAD' ablation (no audio drivers)"
    )
    parser.add_argument(
        "--component-config",
        type=Path,
        help='JSON file of config overrides for the CovOG parts: {"denoising_unet": {...}, '
        '"audio_projection": {...}, "pose_encoder": {...}} (default: none, the standard configs)',
    )
    parser.add_argument("--dtype", choices=_DTYPES, default="float32", help="weights dtype to save")
    parser.add_argument("--out", required=True, type=Path, help="pipeline folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    parser.set_defaults(run=_assemble)


def _add_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate a talking video for one MIT clip and save it as mp4",
        description="Generate a talking video for one MIT clip from its first frame, poses, speaking scores and "
        "audio. Size, steps, guidance and windows default to the values the pipeline was saved with "
        "(CovOGPipeline.generation_defaults).",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="saved CovOG pipeline folder (default: the CovOG shipped in the package, covog_diffusers.pretrained)",
    )
    parser.add_argument("--dataset", required=True, help="MIT dataset folder (or Hub id available offline)")
    parser.add_argument("--clip", required=True, help="clip id")
    parser.add_argument("--config", default=None, help="dataset config (default: all)")
    parser.add_argument("--split", default=None, help="split to look in (default: all splits)")
    parser.add_argument("--out", required=True, type=Path, help="mp4 to write (the clip's audio is muxed in)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: the pipeline's)")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="classifier-free guidance scale, <= 1 turns guidance off (default: the pipeline's)",
    )
    parser.add_argument(
        "--num-frames", type=int, default=None, help="frames to generate (default: the rest of the clip)"
    )
    parser.add_argument(
        "--start-frame", type=int, default=0, help="first clip frame to generate (default: 0)"
    )
    parser.add_argument(
        "--reference-frame", type=int, default=0, help="clip frame used as the reference image (default: 0)"
    )
    parser.add_argument(
        "--height", type=int, default=None, help="output height in pixels (default: the pipeline's)"
    )
    parser.add_argument(
        "--width", type=int, default=None, help="output width in pixels (default: the pipeline's)"
    )
    parser.add_argument(
        "--window-frames",
        type=int,
        default=None,
        help="frames denoised together; longer clips go in overlapping windows (default: the pipeline's)",
    )
    parser.add_argument(
        "--overlap-frames",
        type=int,
        default=None,
        help="frames shared by consecutive windows (default: the pipeline's, at most half a window)",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    parser.add_argument(
        "--speaker-audio",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="one audio file per person (in the clip's person order; repeat the option): speaking "
        "scores then come from voice activity detection and the mix drives the audio (default: the clip's "
        "speaking scores and audio)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--dtype",
        choices=_DTYPES,
        default=None,
        help="compute dtype (default: float16 on cuda, else float32)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="datasets cache folder (default: the datasets library's)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the denoising progress bar")
    parser.set_defaults(run=_generate)


def add_commands(subparsers) -> None:
    """Add ``create-tiny``, ``assemble`` and ``generate`` to ``subparsers`` (each sets ``run``)."""
    for add in (_add_create_tiny, _add_assemble, _add_generate):
        add(subparsers)


# ------------------------------------------------------------------------------------------------- commands


def create_tiny(
    out: Path, seed: int = 0, overwrite: bool = False, components: dict | None = None, vae=None
) -> Path:
    """``create_tiny_pipeline(seed, **components).save_pretrained(out)``, written to a temporary sibling and
    renamed (:func:`mit_dataset.atomic.atomic_path`); ``vae``: an ``AutoencoderKL`` folder replacing the random
    VAE."""
    from mit_dataset.atomic import atomic_path, remove_stale_temporaries

    from .tiny import create_tiny_pipeline

    components = dict(components or {})
    if vae is not None:
        from diffusers import AutoencoderKL

        if not (Path(vae) / "config.json").is_file():
            raise FileNotFoundError(f"--vae: {vae} is not an AutoencoderKL folder (no config.json)")
        components["vae"] = AutoencoderKL.from_pretrained(vae)

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass --overwrite to replace it)")
    remove_stale_temporaries(out.parent)
    with atomic_path(out, directory=True, overwrite=overwrite) as staging:
        pipe = create_tiny_pipeline(seed=seed, **components)
        pipe.check_components()
        pipe.save_pretrained(staging)
    return out


def find_clip(
    dataset, clip_id: str, config: str | None = None, split: str | None = None, cache_dir=None
) -> dict:
    """The row of ``clip_id`` from an MIT dataset folder (all splits searched unless ``split``)."""
    import datasets

    dataset_path = Path(dataset)
    if not dataset_path.exists() and "/" not in str(dataset):
        raise FileNotFoundError(f"--dataset: {dataset} is not a folder")
    from mit_dataset.clip_folder import check_not_clip_folders

    check_not_clip_folders(dataset)
    loaded = datasets.load_dataset(str(dataset), config, split=split, cache_dir=cache_dir)
    splits = {split: loaded} if split is not None else dict(loaded)
    for part in splits.values():
        ids = part["clip_id"]
        if clip_id in ids:
            return part[list(ids).index(clip_id)]
    known = sorted(clip for part in splits.values() for clip in part["clip_id"])
    shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
    raise KeyError(f"clip {clip_id!r} is not in {dataset} ({'/'.join(splits)}); clips: {shown}")


_COMPONENT_KEYS = ("denoising_unet", "audio_projection", "pose_encoder")


def _component_config(path, allowed: tuple[str, ...] = _COMPONENT_KEYS) -> dict:
    if path is None:
        return {}
    import json

    try:
        config = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--component-config: cannot read {path} as JSON ({error})") from error
    unknown = set(config) - set(allowed) if isinstance(config, dict) else {"<not an object>"}
    if unknown or not all(isinstance(v, dict) for v in config.values()):
        raise ValueError(
            f"--component-config: expected an object with keys among {allowed} mapping to "
            f"objects, got {sorted(unknown) or config}"
        )
    return config


def _torch_dtype(name):
    import torch

    return None if name is None else getattr(torch, name)


def generate(args) -> Path:
    import numpy as np
    import torch

    from mit_dataset.video_io import read_audio

    from .pipelines import CovOGPipeline
    from .video_export import export_to_video

    if args.model is None:
        from .pretrained import default_pipeline_path

        args.model = default_pipeline_path()
    if not (args.model / "model_index.json").is_file():
        raise FileNotFoundError(f"--model: {args.model} is not a saved CovOG pipeline (no model_index.json)")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _torch_dtype(args.dtype) or (torch.float16 if device.startswith("cuda") else torch.float32)
    row = find_clip(args.dataset, args.clip, args.config, args.split, args.cache_dir)
    pipe = CovOGPipeline.from_pretrained(args.model, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=args.no_progress)
    inputs = pipe.inputs_from_mit_row(
        row,
        num_frames=args.num_frames,
        start_frame=args.start_frame,
        reference_frame=args.reference_frame,
        height=args.height,
        width=args.width,
    )
    if args.speaker_audio:
        persons = inputs["poses"].shape[0]
        if len(args.speaker_audio) != persons:
            raise ValueError(
                f"--speaker-audio: clip {args.clip!r} has {persons} persons, got {len(args.speaker_audio)} files"
            )
        rate = int(inputs["sample_rate"])
        tracks = [read_audio(path, sample_rate=rate) for path in args.speaker_audio]
        start = round(args.start_frame / inputs["fps"] * rate)
        stop = start + round(inputs["num_frames"] / inputs["fps"] * rate)
        tracks = [track[start:stop] for track in tracks]
        from mit_dataset.vad import mix_tracks

        inputs.pop("speaking_scores")
        inputs["speaker_audios"] = tracks
        inputs["audio"] = mix_tracks(tracks)
    defaults = pipe.generation_defaults
    steps = defaults["num_inference_steps"] if args.steps is None else args.steps
    guidance = defaults["guidance_scale"] if args.guidance_scale is None else args.guidance_scale
    print(
        f"generating {inputs['num_frames']} frames of {args.clip} at {inputs['height']}x{inputs['width']}, "
        f"{steps} steps, guidance scale {guidance:g}, on {device}"
    )
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    result = pipe(
        **inputs,
        num_inference_steps=steps,
        guidance_scale=guidance,
        window_frames=args.window_frames,
        overlap_frames=args.overlap_frames,
        generator=generator,
        output_type="np",
    )
    frames = np.asarray(result.frames[0])
    return export_to_video(
        frames, args.out, fps=inputs["fps"], audio=inputs["audio"], sample_rate=inputs["sample_rate"]
    )


def _create_tiny(args) -> None:
    from .tiny import tiny_configs

    components = _component_config(args.component_config, tuple(tiny_configs()))
    out = create_tiny(args.out, seed=args.seed, overwrite=args.overwrite, components=components, vae=args.vae)
    print(f"wrote a tiny CovOG pipeline to {out}")


def _assemble(args) -> None:
    from .assemble import assemble_pipeline

    overrides = _component_config(args.component_config)
    denoising = overrides.get("denoising_unet", {})
    if args.no_iad:
        denoising = {**denoising, "use_iad": False}
    report = assemble_pipeline(
        sd15=args.sd15,
        vae=args.vae,
        image_encoder=args.image_encoder,
        wav2vec2=args.wav2vec2,
        motion_module=args.motion_module,
        animate_anyone=args.animate_anyone,
        unet_config=args.unet_config,
        denoising_config=denoising or None,
        audio_projection_config=overrides.get("audio_projection"),
        pose_config=overrides.get("pose_encoder"),
        dtype=_torch_dtype(args.dtype),
        out=args.out,
        overwrite=args.overwrite,
    )
    print(report.summary())


def _generate(args) -> None:
    print(f"wrote {generate(args)}")

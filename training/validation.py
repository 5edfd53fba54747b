"""Validation video: the pipeline, with the weights being trained, on one clip at the training size.

Written to ``{output}/validation/step-{step}.mp4`` with the clip's audio (:func:`covog_diffusers.video_export.
export_to_video`, atomic) and logged to the trackers as a strip of frames (first, middle, last). Inputs come
from :meth:`CovOGPipeline.inputs_from_mit_row`, i.e. exactly what ``covog generate`` would run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def validation_inputs(pipe, row, config) -> dict:
    frames = min(config.output.validation_frames, int(row["num_frames"]))
    return pipe.inputs_from_mit_row(
        row, num_frames=frames, height=config.data.height, width=config.data.width
    )


@torch.no_grad()
def write_validation_video(pipe, inputs: dict, config, step: int, output_dir, trackers=()) -> Path:
    """Generate, write ``validation/step-{step}.mp4`` and log a frame strip; returns the video path."""
    from covog_diffusers.video_export import export_to_video

    window = min(pipe.denoising_unet.config.motion_max_seq_length, 16)
    generator = torch.Generator(device="cpu").manual_seed(config.training.seed)
    frames = pipe(
        **inputs,
        num_inference_steps=config.output.validation_inference_steps,
        guidance_scale=config.output.validation_guidance_scale,
        window_frames=window,
        overlap_frames=min(6, window // 2),
        generator=generator,
        output_type="np",
    ).frames[0]
    frames = np.asarray(frames)
    path = Path(output_dir) / "validation" / f"step-{step}.mp4"
    export_to_video(frames, path, fps=inputs["fps"], audio=inputs["audio"], sample_rate=inputs["sample_rate"])
    strip = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=1)  # (H, 3W, 3)
    for tracker in trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation", strip, step, dataformats="HWC")
    return path

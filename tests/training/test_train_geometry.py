"""One geometry: the training step and the pipeline (``inputs_from_mit_row`` -> ``pipe(...)``) give the model
the same pose maps, face masks and reference framing for a clip whose aspect ratio differs from the output's,
so a keypoint lands on the same latent cell in training and in generation."""

from __future__ import annotations

import datasets
import numpy as np
import torch

from covog_diffusers.models.audio import audio_context_frames
from covog_diffusers.pipelines.inputs import prepare_inputs
from covog_diffusers.tiny import create_tiny_pipeline
from mit_dataset.torch_view import MITVideoDataset, collate_mit_batch
from training.config import config_from_dict
from training.losses import noise_scheduler_for
from training.network import CovOGTrainingModel
from training.step import prepare_step, step_generator

SIZE = 64  # square output from 128x72 clips: cover scales by 64/72 and crops 25 columns each side
FRAMES = 4


def capture(pipe):
    """Record the pose guider's input maps and the DenoisingNet's face masks of the next call."""
    seen = {}

    def maps(module, args, output):
        seen.setdefault("maps", args[0].clone())

    def masks(module, args, kwargs, output):
        seen.setdefault("face_masks", kwargs["face_masks"].clone())

    hooks = [
        pipe.pose_guider.register_forward_hook(maps),
        pipe.denoising_unet.register_forward_hook(masks, with_kwargs=True),
    ]
    return seen, hooks


def test_keypoint_lands_on_the_same_latent_cell(synthetic_dataset_dir, one_thread, tmp_path):
    split = datasets.load_dataset(str(synthetic_dataset_dir), split="train")
    row = split[0]
    clip_h, clip_w = row["height"], row["width"]
    assert clip_w / clip_h != 1.0  # the output aspect differs: stretching and cropping disagree

    # Training: the view's item through the training step and model.
    pipe = create_tiny_pipeline(seed=0, randomize_zero_init=True)
    view = MITVideoDataset(
        split, num_frames=FRAMES, height=SIZE, width=SIZE, mask_factors=(), window="first", reference="first",
        audio_context_frames=audio_context_frames(pipe.audio_projection.config.window),
    )  # fmt: skip
    item = view[0]
    config = config_from_dict(
        {"stage": 2, "model": {"pretrained": "tiny"}, "data": {"dataset": str(synthetic_dataset_dir),
         "height": SIZE, "width": SIZE, "num_frames": FRAMES}, "output": {"dir": str(tmp_path)}}
    )  # fmt: skip
    seen_train, hooks = capture(pipe)
    model = CovOGTrainingModel(
        pipe.reference_unet, pipe.denoising_unet, pipe.pose_guider, pipe.pose_adaptor, pipe.audio_projection
    )
    with torch.no_grad():
        batch = collate_mit_batch([item])
        inputs, _, _ = prepare_step(
            pipe,
            noise_scheduler_for(pipe),
            batch,
            config,
            step_generator(0, 0, 0, "cpu"),
            "cpu",
            use_audio=True,
        )
        model(**inputs)
    model.release()
    for hook in hooks:
        hook.remove()

    # Generation: what `covog generate` / `mit-bench predict` run for the same clip and size.
    generation = pipe.inputs_from_mit_row(row, num_frames=FRAMES, height=SIZE, width=SIZE)
    seen_gen, hooks = capture(pipe)
    pipe(
        **generation,
        num_inference_steps=1,
        guidance_scale=1.0,
        window_frames=FRAMES,
        overlap_frames=0,
        output_type="latent",
    )
    for hook in hooks:
        hook.remove()

    # The same keypoints in output pixels, hence the same latent cells.
    prepared = prepare_inputs(**generation)
    train_kp = item["keypoints"].numpy()  # (P, F, 59, 3)
    np.testing.assert_allclose(prepared.pose_keypoints, train_kp, atol=1e-4)
    nose_train = np.floor(train_kp[0, 0, 0, :2] / 8)
    nose_gen = np.floor(prepared.pose_keypoints[0, 0, 0, :2] / 8)
    assert tuple(nose_train) == tuple(nose_gen)
    # The old stretch (x * W / W0, y * H / H0) would have put the nose elsewhere on this clip.
    raw = np.asarray(row["persons"][0]["keypoints"], np.float32)[0, 0, :2]
    stretched = np.floor(raw * [SIZE / clip_w, SIZE / clip_h] / 8)
    cropped = np.floor((raw * SIZE / clip_h - [(round(clip_w * SIZE / clip_h) - SIZE) // 2, 0]) / 8)
    assert tuple(cropped) == tuple(nose_train) and tuple(stretched) != tuple(nose_train)

    # What the models receive: identical pose maps (per frame, per person) and IAD face masks.
    train_maps = seen_train["maps"]  # (B*F, P, 3, H, W)
    gen_maps = seen_gen["maps"]
    assert train_maps.shape == gen_maps.shape == (FRAMES, item["keypoints"].shape[0], 3, SIZE, SIZE)
    assert torch.equal(train_maps, gen_maps)
    torch.testing.assert_close(seen_train["face_masks"], seen_gen["face_masks"])
    assert seen_train["face_masks"].sum() > 0

    # The reference frame is framed the same way (two resamplers: FFmpeg in the view, torch in the pipeline).
    train_ref = (item["reference_pixel_values"].permute(1, 2, 0).numpy() + 1) * 127.5
    gen_ref = prepared.reference_image.astype(np.float32)
    stretched_ref = torch.nn.functional.interpolate(
        torch.from_numpy(np.asarray(generation["reference_image"])).permute(2, 0, 1)[None].float(),
        size=(SIZE, SIZE), mode="bilinear", antialias=True,
    )[0].permute(1, 2, 0).numpy()  # fmt: skip
    same = np.abs(train_ref - gen_ref).mean()
    assert same < 4.0 and same < 0.5 * np.abs(train_ref - stretched_ref).mean()

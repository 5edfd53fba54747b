"""One audio input: for the same clip window, the training step gives the DenoisingNet the audio tokens the
pipeline computes for that window (wav2vec2 over the window plus its context, zeros outside the clip, the
+-2-frame neighbourhood at the video's frame rate), at the start, in the middle and at the end of a clip, for
dense and strided training windows."""

from __future__ import annotations

import pytest
import torch

import covog_diffusers.models.audio as audio_module
from covog_diffusers.models.audio import audio_context_frames
from mit_dataset.torch_view import collate_mit_batch
from training.data import build_view
from training.loop import prepare_run
from training.losses import noise_scheduler_for
from training.network import CovOGTrainingModel
from training.step import prepare_step, step_generator

HEIGHT, WIDTH = 32, 64  # the tiny configs' size
# Pipeline windows of 7 frames overlapping by 1 on a 30-frame clip: [0, 7), [6, 13), [12, 19), [18, 25), [24, 30).
WINDOW_FRAMES, OVERLAP_FRAMES = 7, 1
# Training windows (start, num_frames, stride), each spanning exactly one pipeline window.
TRAINING_WINDOWS = [(0, 7, 1), (12, 7, 1), (24, 6, 1), (0, 4, 2), (12, 4, 2), (18, 4, 2)]


@pytest.fixture
def prepared_run(tiny_config):
    """``prepare_run`` of the tiny stage 2 config (the loop's pipeline and view); accelerate's process-wide
    state is reset afterwards, as ``train`` does."""
    from accelerate.state import AcceleratorState, GradientState

    runs = []

    def make(*overrides):
        runs.append(prepare_run(tiny_config(2, *overrides)))
        return runs[-1]

    yield make
    AcceleratorState._reset_state()
    GradientState._reset_state()


def pipeline_tokens(pipe, row) -> dict[tuple[int, int], torch.Tensor]:
    """``{(start, end): (end - start, M, D)}``: the tokens of each window of a whole-clip generation."""
    seen = {}

    def record(module, args, kwargs, output):
        seen[pipe.current_window[1:]] = kwargs["audio_tokens"][0].detach().clone()

    hook = pipe.denoising_unet.register_forward_hook(record, with_kwargs=True)
    try:
        pipe(
            **pipe.inputs_from_mit_row(row, height=HEIGHT, width=WIDTH),
            num_inference_steps=1,
            guidance_scale=1.0,
            window_frames=WINDOW_FRAMES,
            overlap_frames=OVERLAP_FRAMES,
            output_type="latent",
        )
    finally:
        hook.remove()
    return seen


def training_tokens(pipe, config, batch) -> torch.Tensor:
    """``(F, M, D)`` tokens the training model feeds the DenoisingNet for a one-sample batch."""
    seen = []
    model = CovOGTrainingModel(
        pipe.reference_unet, pipe.denoising_unet, pipe.pose_guider, pipe.pose_adaptor, pipe.audio_projection
    )
    hook = pipe.denoising_unet.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(kwargs["audio_tokens"][0].detach().clone()),
        with_kwargs=True,
    )
    try:
        with torch.no_grad():
            generator = step_generator(0, 0, 0, "cpu")
            inputs, _, _ = prepare_step(
                pipe, noise_scheduler_for(pipe), batch, config, generator, "cpu", True
            )
            model(**inputs)
    finally:
        hook.remove()
        model.release()
    return seen[0]


@pytest.mark.parametrize("context", [None, 3], ids=["context-1s", "context-3-frames"])
def test_training_step_and_pipeline_compute_the_same_audio_tokens(
    prepared_run, tiny_config, monkeypatch, context
):
    """With the default 1 s of context every window's context reaches past a clip edge; with 3 frames the
    middle windows hear only real audio around them and the first/last ones are padded on one side."""
    if context is not None:
        monkeypatch.setattr(audio_module, "AUDIO_CONTEXT_FRAMES", context)
    run = prepared_run()
    pipe, split = run.pipe, run.view.dataset
    assert run.use_audio
    assert run.view.audio_context_frames == audio_context_frames(pipe.audio_projection.config.window)
    row = split[0]
    assert row["num_frames"] == 30
    generated = pipeline_tokens(pipe, row)
    assert sorted(generated) == [(0, 7), (6, 13), (12, 19), (18, 25), (24, 30)]

    for start, num_frames, stride in TRAINING_WINDOWS:
        config = tiny_config(2, f"data.num_frames={num_frames}", f"data.stride={stride}")
        view = build_view(split, config, seed=0, audio_context_frames=run.view.audio_context_frames)
        batch = collate_mit_batch([view.load_window(0, start)])
        tokens = training_tokens(pipe, config, batch)
        span = (num_frames - 1) * stride + 1
        expected = generated[(start, start + span)][::stride]
        assert tokens.shape == expected.shape == (num_frames, *expected.shape[1:])
        # Bit-identical: the same samples (lossless audio read by libsndfile in the view, by FFmpeg in the
        # pipeline) through the same function and modules.
        assert torch.equal(tokens, expected), f"window {start}+{span} at stride {stride}"

        # Not vacuous: without the audio around the window (what training fed before), the tokens differ.
        if (start, stride) == (12, 1):
            lo = run.view.audio_context_frames * 640  # 16 kHz / 25 fps
            hi = lo + span * 640
            batch["audio_context"][:, :lo] = 0
            batch["audio_context"][:, hi:] = 0
            alone = training_tokens(pipe, config, batch)
            assert (alone - expected).abs().max() > 1e-3

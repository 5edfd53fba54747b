"""CovOGPipeline end to end on the tiny random pipeline: outputs, round trip, CFG, long videos, callbacks,
bad inputs, MIT rows."""

from __future__ import annotations

import inspect
import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pipeline_inputs import F, H, P, W, make_inputs

from covog_diffusers.pipelines import CovOGPipeline, plan_windows
from covog_diffusers.pipelines.mit import inputs_from_mit_row as mit_inputs_from_row
from covog_diffusers.tiny import create_tiny_pipeline


def run(pipe, seed: int = 0, **kwargs):
    inputs = {**make_inputs(), "output_type": "np", **kwargs}
    return pipe(**inputs, generator=torch.Generator().manual_seed(seed)).frames


@pytest.fixture(scope="module")
def pipe():
    """Tiny pipeline with non-zero pose/IAD outputs so every input shows (treat as read-only)."""
    return create_tiny_pipeline(seed=0, randomize_zero_init=True)


def test_output_types(pipe):
    np_frames = run(pipe, output_type="np")
    assert np_frames.shape == (1, F, H, W, 3) and np_frames.dtype == np.float32
    assert 0.0 <= np_frames.min() and np_frames.max() <= 1.0
    pt_frames = run(pipe, output_type="pt")
    assert isinstance(pt_frames, torch.Tensor) and pt_frames.shape == (1, F, 3, H, W)
    np.testing.assert_allclose(pt_frames.permute(0, 1, 3, 4, 2).numpy(), np_frames, atol=1e-6)
    pil_frames = run(pipe, output_type="pil")
    assert len(pil_frames) == 1 and len(pil_frames[0]) == F
    assert all(isinstance(image, Image.Image) and image.size == (W, H) for image in pil_frames[0])
    latents = run(pipe, output_type="latent")
    assert latents.shape == (1, 4, F, H // 8, W // 8)
    (tuple_frames,) = pipe(
        **make_inputs(), output_type="np", return_dict=False, generator=torch.Generator().manual_seed(0)
    )
    np.testing.assert_array_equal(tuple_frames, np_frames)


def test_same_generator_same_video_and_inputs_matter(pipe):
    base = run(pipe)
    np.testing.assert_array_equal(run(pipe), base)
    assert not np.allclose(run(pipe, seed=1), base)
    inputs = make_inputs()
    assert not np.allclose(run(pipe, reference_image=255 - inputs["reference_image"]), base, atol=1e-4)
    assert not np.allclose(run(pipe, speaking_scores=-inputs["speaking_scores"]), base, atol=1e-5)
    assert not np.allclose(run(pipe, poses=make_inputs(seed=3)["poses"]), base, atol=1e-4)


def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "CovOGPipeline"
    assert index["denoising_unet"] == ["covog_diffusers.models.denoising_net", "CovOGDenoisingNet"]
    assert index["pose_guider"] == ["covog_diffusers.models.pose_encoder", "MultiHumanPoseEncoder"]
    assert index["pose_adaptor"] == ["covog_diffusers.models.pose_encoder", "MultiHumanPoseEncoder"]
    assert index["audio_projection"] == ["covog_diffusers.models.audio", "AudioProjection"]
    loaded = CovOGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert set(loaded.components) == set(pipe.components)
    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            state, loaded_state = module.state_dict(), loaded.components[name].state_dict()
            assert state.keys() == loaded_state.keys()
            assert all(torch.equal(state[k], loaded_state[k]) for k in state), name
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert (
        loaded.scheduler.config.rescale_betas_zero_snr
        and loaded.scheduler.config.timestep_spacing == "trailing"
    )
    # Same weights, same generator: the same video. (Loaded weights live in differently aligned memory, which
    # can change the last float bits of CPU kernels, hence the 1e-5 tolerance instead of bit equality.)
    np.testing.assert_allclose(run(loaded), run(pipe), atol=1e-5, rtol=0)


def test_classifier_free_guidance_branches(pipe):
    seen = []

    def spy(module, args, kwargs):
        seen.append((args[0].shape[0], kwargs["encoder_hidden_states"].clone()))

    handle = pipe.denoising_unet.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        guided = run(pipe, guidance_scale=3.0)
        assert {batch for batch, _ in seen} == {2}
        # Unconditional branch first: zeroed CLIP embedding (what training drops).
        states = seen[0][1]
        assert torch.count_nonzero(states[0]) == 0 and torch.count_nonzero(states[1]) > 0
        seen.clear()
        unguided = run(pipe, guidance_scale=1.0)
        assert {batch for batch, _ in seen} == {1}
    finally:
        handle.remove()
    assert not np.allclose(guided, unguided, atol=1e-5)
    assert not pipe.reference_unet.conv_in._forward_hooks


def test_plan_windows():
    assert plan_windows(8, 16, 6) == [(0, 8)]
    assert plan_windows(16, 16, 6) == [(0, 16)]
    assert plan_windows(30, 16, 6) == [(0, 16), (10, 26), (20, 30)]
    assert plan_windows(14, 8, 3) == [(0, 8), (5, 13), (10, 14)]
    for num_frames, window, overlap in ((100, 16, 6), (17, 16, 15), (50, 5, 0)):
        windows = plan_windows(num_frames, window, overlap)
        assert windows[0][0] == 0 and windows[-1][1] == num_frames
        assert all(end - start <= window for start, end in windows)
        assert all(b[0] == a[1] - overlap and b[1] - b[0] > overlap for a, b in itertools.pairwise(windows))
    with pytest.raises(ValueError, match="overlap_frames"):
        plan_windows(30, 8, 8)


def test_long_video_windows_are_continuous(pipe, monkeypatch):
    """The first k frames of each window are the previous window's last k clean latents."""
    windows = []
    original = pipe._denoise_window

    def spy(latents, fixed_latents, *args, **kwargs):
        out = original(latents, fixed_latents, *args, **kwargs)
        windows.append((None if fixed_latents is None else fixed_latents.clone(), out.clone()))
        return out

    monkeypatch.setattr(pipe, "_denoise_window", spy)
    frames = 14
    inputs = {**make_inputs(frames=frames), "window_frames": 8, "overlap_frames": 3}
    latents = pipe(**inputs, output_type="latent", generator=torch.Generator().manual_seed(0)).frames
    assert len(windows) == 3 and [w[1].shape[2] for w in windows] == [8, 8, 4]
    assert windows[0][0] is None
    for (_, previous), (fixed, current) in itertools.pairwise(windows):
        torch.testing.assert_close(fixed, previous[:, :, -3:], rtol=0, atol=0)
        torch.testing.assert_close(current[:, :, :3], previous[:, :, -3:], rtol=0, atol=0)
    assert latents.shape == (1, 4, frames, H // 8, W // 8)
    expected = torch.cat([windows[0][1], windows[1][1][:, :, 3:], windows[2][1][:, :, 3:]], dim=2)
    torch.testing.assert_close(latents, expected, rtol=0, atol=0)
    # Decoded video: all frames, the same as decoding the stitched latents chunk by chunk.
    video = pipe(
        **inputs, output_type="pt", decode_chunk_size=3, generator=torch.Generator().manual_seed(0)
    ).frames
    assert video.shape == (1, frames, 3, H, W)
    decoded = pipe.decode_latents(latents)  # (1, 3, F, H, W), the VAE's range
    torch.testing.assert_close(
        video, pipe.video_processor.postprocess_video(decoded, "pt"), atol=1e-5, rtol=0
    )


def test_frames_callback_streams_windows(pipe):
    chunks = []
    inputs = {**make_inputs(frames=14), "window_frames": 8, "overlap_frames": 3, "output_type": "np"}
    streamed = pipe(
        **inputs,
        frames_callback=lambda start, f: chunks.append((start, f)),
        generator=torch.Generator().manual_seed(0),
    )
    assert streamed.frames is None
    assert [(start, f.shape[:2]) for start, f in chunks] == [(0, (1, 8)), (8, (1, 5)), (13, (1, 1))]
    full = pipe(**inputs, generator=torch.Generator().manual_seed(0)).frames
    np.testing.assert_array_equal(np.concatenate([f for _, f in chunks], axis=1), full)


def test_callback_on_step_end(pipe):
    calls = []

    def callback(p, step, timestep, kwargs):
        calls.append((step, int(timestep), sorted(kwargs), p.current_window))
        if step == 1:
            return {"latents": torch.zeros_like(kwargs["latents"])}
        return {}

    latents = run(
        pipe,
        output_type="latent",
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "noise_pred"],
    )
    assert [c[0] for c in calls] == [0, 1]
    assert calls[0][2] == ["latents", "noise_pred"] and calls[0][3] == (0, 0, F)
    assert calls[0][1] > calls[1][1]  # timesteps go down
    assert torch.count_nonzero(latents) == 0  # the callback's latents were used
    with pytest.raises(ValueError, match="callback tensor inputs"):
        run(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["pose"])


def test_pre_rendered_pose_maps_match_keypoints(pipe):
    from mit_dataset.keypoints import head_box
    from mit_dataset.pose_render import render_pose_maps

    inputs = make_inputs()
    maps = render_pose_maps(inputs["poses"], H, W).transpose(0, 1, 4, 2, 3)  # (P, F, 3, H, W) uint8
    ref_maps = render_pose_maps(inputs["reference_poses"], H, W).transpose(0, 3, 1, 2)
    from_maps = run(pipe, poses=maps, reference_poses=ref_maps, face_boxes=head_box(inputs["poses"]))
    np.testing.assert_allclose(from_maps, run(pipe), atol=1e-6)


def test_speaker_audios_give_scores_and_the_mix(pipe, monkeypatch):
    from mit_dataset import vad

    calls = []

    def fake_scores(tracks, sample_rate, num_frames, fps=25.0, **kwargs):
        calls.append((len(tracks), sample_rate, num_frames, fps))
        return np.linspace(-1, 1, len(tracks) * num_frames, dtype=np.float32).reshape(len(tracks), num_frames)

    monkeypatch.setattr(vad, "speaking_scores_from_tracks", fake_scores)
    rng = np.random.default_rng(5)
    tracks = [(0.1 * rng.standard_normal(F * 640)).astype(np.float32) for _ in range(P)]
    inputs = {**make_inputs(), "audio": None, "speaking_scores": None}
    got = run(pipe, **inputs, speaker_audios=tracks)
    assert calls == [(P, 16_000, F, 25.0)]
    expected = run(pipe, audio=vad.mix_tracks(tracks), speaking_scores=fake_scores(tracks, 16_000, F))
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- bad input, before any heavy compute
@pytest.fixture
def guarded_pipe(monkeypatch):
    """A pipeline whose encoders and UNets fail loudly if anything runs them."""
    pipe = create_tiny_pipeline(seed=0)

    def boom(*args, **kwargs):
        raise RuntimeError("heavy compute started before the inputs were validated")

    for name in ("vae", "image_encoder", "reference_unet", "denoising_unet", "audio_encoder", "pose_guider"):
        monkeypatch.setattr(pipe.components[name], "forward", boom)
    monkeypatch.setattr(pipe.vae, "encode", boom)
    return pipe


def _nan(array, index):
    array = np.array(array, dtype=np.float32)
    array[index] = np.nan
    return array


BAD_INPUTS = {
    "reference persons": (
        lambda i: {"reference_poses": i["reference_poses"][:1]},
        "reference_poses have 1 persons but poses have 2",
    ),
    "score persons": (
        lambda i: {"speaking_scores": i["speaking_scores"][:1]},
        "speaking_scores have 1 persons",
    ),
    "score frames": (
        lambda i: {"speaking_scores": i["speaking_scores"][:, :5]},
        r"5 frames but poses have 8 \(-3 frames\)",
    ),
    "audio too short": (
        lambda i: {"audio": i["audio"][:2000]},
        r"audio lasts 0.125 s = 3.1 frames .* poses have 8 frames \(-4.9 frames",
    ),
    "audio too long": (lambda i: {"audio": np.tile(i["audio"], 2)}, r"audio lasts 0.640 s .*\+8.0 frames"),
    "height": (lambda i: {"height": 60, "width": 64}, "multiples of the VAE factor 8, got height=60"),
    "width": (lambda i: {"height": 64, "width": 36}, "width=36"),
    "empty audio": (lambda i: {"audio": np.zeros(0, np.float32)}, "audio is empty"),
    "stereo audio": (lambda i: {"audio": np.zeros((2, 5120), np.float32)}, "mono waveform"),
    "stereo speaker_audios": (  # soundfile.read's (S, 2): not S speakers of 2 samples
        lambda i: {"speaker_audios": np.zeros((5120, 2), np.float32), "speaking_scores": None},
        r"speaker_audios: a \(5120, 2\) array looks like one multi-channel waveform",
    ),
    "stereo speaker track": (
        lambda i: {"speaker_audios": [np.zeros(5120), np.zeros((5120, 2))], "speaking_scores": None},
        r"speaker_audios\[1\]: expected a non-empty mono waveform .*stereo",
    ),
    "nan poses": (
        lambda i: {"poses": _nan(i["poses"], (1, 3, 4, 0))},
        r"poses contains NaN/inf \(first at index \[1, 3, 4, 0\]\)",
    ),
    "nan reference poses": (
        lambda i: {"reference_poses": _nan(i["reference_poses"], (0, 1, 1))},
        "reference_poses contains NaN",
    ),
    "nan scores": (
        lambda i: {"speaking_scores": _nan(i["speaking_scores"], (0, 2))},
        "speaking_scores contains NaN",
    ),
    "nan audio": (lambda i: {"audio": _nan(i["audio"], 10)}, "audio contains NaN"),
    "nan image": (
        lambda i: {"reference_image": _nan(i["reference_image"] / 255.0, (0, 0, 0))},
        "reference_image contains NaN",
    ),
    "too many speakers": (
        lambda i: make_inputs(persons=5),
        "5 persons given, but the model supports at most max_speakers=4",
    ),
    "no scores": (lambda i: {"speaking_scores": None}, "pass speaking_scores"),
    "pose shape": (lambda i: {"poses": i["poses"][..., :2]}, r"poses must be \(P, F, 59, 3\) keypoints"),
    "maps without boxes": (lambda i: {"poses": np.zeros((2, 8, 3, 64, 64), np.float32)}, "pass face_boxes"),
    "num_frames": (lambda i: {"num_frames": 9}, r"num_frames=9 must lie in \[1, 8\]"),
    "window": (lambda i: {"window_frames": 40}, "exceeds the motion module's maximum 32"),
    "overlap": (lambda i: {"window_frames": 4, "overlap_frames": 4}, "overlap_frames must lie in"),
    "output type": (lambda i: {"output_type": "mp4"}, "output_type must be one of"),
    "latents shape": (
        lambda i: {"latents": torch.zeros(1, 4, 7, 4, 8)},
        r"latents must have shape \(1, 4, 8, 4, 8\)",
    ),
    "sample rate": (lambda i: {"sample_rate": 0}, "sample_rate must be a positive integer"),
    "no reference": (lambda i: {"reference_image": None}, "reference_image is required"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_fail_early_with_clear_messages(guarded_pipe, case):
    change, message = BAD_INPUTS[case]
    inputs = make_inputs()
    inputs.update(change(inputs))
    with pytest.raises(ValueError, match=message):
        guarded_pipe(**inputs)


# ---------------------------------------------------------------- MIT rows
def _row_from_record(record) -> dict:
    import io

    import soundfile as sf
    from torchcodec.decoders import AudioDecoder, VideoDecoder

    buffer = io.BytesIO()
    sf.write(buffer, record.audio, 16_000, format="WAV")
    return {
        "clip_id": record.clip_id,
        "num_frames": record.num_frames,
        "fps": record.fps,
        "width": record.width,
        "height": record.height,
        "video": VideoDecoder(str(record.video_path)),
        "audio": AudioDecoder(buffer.getvalue()),
        "persons": [
            {"keypoints": p.keypoints, "speaking_score": p.speaking_score.tolist()} for p in record.persons
        ],
    }


def test_inputs_from_mit_row(pipe, make_record):
    record = make_record(num_people=3)
    row = _row_from_record(record)
    inputs = pipe.inputs_from_mit_row(
        row, num_frames=8, start_frame=4, reference_frame=2, height=64, width=64
    )
    assert inputs["poses"].shape == (3, 8, 59, 3) and inputs["reference_poses"].shape == (3, 59, 3)
    np.testing.assert_array_equal(inputs["poses"][1], record.persons[1].keypoints[4:12])
    np.testing.assert_array_equal(inputs["reference_poses"][2], record.persons[2].keypoints[2])
    np.testing.assert_allclose(inputs["speaking_scores"][0], record.persons[0].speaking_score[4:12])
    assert inputs["reference_image"].shape == (record.height, record.width, 3)
    assert inputs["keypoint_size"] == (record.height, record.width)
    np.testing.assert_allclose(inputs["audio"], record.audio[2560:7680], atol=1e-4)
    frames = pipe(
        **inputs, num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).frames
    assert frames.shape == (1, 8, 64, 64, 3)
    # Defaults: the whole clip at the pipeline's size; without one, the paper's size rule (long side 640, short
    # side a multiple of 64).
    defaults = pipe.inputs_from_mit_row(row)
    assert defaults["num_frames"] == record.num_frames and (defaults["height"], defaults["width"]) == (H, W)
    plain = mit_inputs_from_row(row)
    assert (plain["height"], plain["width"]) == (384, 640)
    with pytest.raises(ValueError, match="cannot take"):
        pipe.inputs_from_mit_row(row, num_frames=record.num_frames, start_frame=1)


def test_inputs_from_mit_row_on_the_class_says_to_load_a_pipeline(pipe, make_record):
    row = _row_from_record(make_record(num_people=2))
    with pytest.raises(TypeError) as error:
        CovOGPipeline.inputs_from_mit_row(row)
    assert str(error.value) == (
        "CovOGPipeline.inputs_from_mit_row is a method of a loaded pipeline (it uses its generation defaults): "
        "pipe = CovOGPipeline.from_pretrained(PATH); pipe.inputs_from_mit_row(...)"
    )
    # An explicit unbound call is an ordinary method call; introspection sees the method's own signature.
    unbound = CovOGPipeline.inputs_from_mit_row(pipe, row, num_frames=4)
    bound = pipe.inputs_from_mit_row(row, num_frames=4)
    assert (unbound["height"], unbound["width"]) == (bound["height"], bound["width"]) == (H, W)
    np.testing.assert_array_equal(unbound["poses"], bound["poses"])
    assert list(inspect.signature(CovOGPipeline.inputs_from_mit_row).parameters)[:2] == ["self", "row"]
    assert "pipe(**inputs)" in CovOGPipeline.inputs_from_mit_row.__doc__


def test_inputs_from_loaded_dataset_row(pipe, synthetic_dataset_dir):
    import datasets

    row = datasets.load_dataset(str(synthetic_dataset_dir), split="test")[0]
    inputs = pipe.inputs_from_mit_row(row, num_frames=8)
    frames = pipe(
        **inputs, num_inference_steps=1, output_type="np", generator=torch.Generator().manual_seed(0)
    ).frames
    assert frames.shape == (1, 8, H, W, 3)


def test_work_per_model_call_does_not_grow_with_video_length(pipe, monkeypatch):
    """Windows are streamed and decoding is chunked: the largest input any model sees is the same for a
    32-frame and a 64-frame video (so peak memory does not grow with the length). The audio context is cut to
    3 frames to keep the test fast (every window's audio is padded to its full context)."""
    import covog_diffusers.models.audio as audio_module

    monkeypatch.setattr(audio_module, "AUDIO_CONTEXT_FRAMES", 3)

    def largest_inputs(frames: int) -> dict[str, int]:
        sizes: dict[str, int] = {}

        def recorder(name):
            def hook(module, args, kwargs):
                tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
                sizes[name] = max(sizes.get(name, 0), max(t.numel() for t in tensors))

            return hook

        modules = {
            "denoising_unet": pipe.denoising_unet,
            "vae_decoder": pipe.vae.decoder,
            "pose_guider": pipe.pose_guider,
            "audio_encoder": pipe.audio_encoder,
            "audio_projection": pipe.audio_projection,
        }
        handles = [m.register_forward_pre_hook(recorder(n), with_kwargs=True) for n, m in modules.items()]
        try:
            inputs = {
                **make_inputs(frames=frames),
                "window_frames": 8,
                "overlap_frames": 2,
                "num_inference_steps": 1,
            }
            pipe(**inputs, output_type="np", decode_chunk_size=4, frames_callback=lambda start, f: None)
        finally:
            for handle in handles:
                handle.remove()
        return sizes

    short, long = largest_inputs(32), largest_inputs(64)
    assert short.keys() == long.keys() and len(short) == 5
    assert long == short


def test_ablation_pipeline_without_adaptor_and_iad_round_trips(tmp_path):
    """Optional components: no pose adaptor, no audio encoder/projection ("without IAD" ablation)."""
    pipe = create_tiny_pipeline(
        pose_adaptor=None, audio_encoder=None, audio_projection=None, denoising_unet={"use_iad": False}
    )
    assert not pipe.uses_audio
    frames = run(pipe)
    assert frames.shape == (1, F, H, W, 3)
    # Without audio drivers the speaking scores do not matter.
    np.testing.assert_array_equal(run(pipe, speaking_scores=-make_inputs()["speaking_scores"]), frames)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["pose_adaptor"] == [None, None] and index["audio_encoder"] == [None, None]
    loaded = CovOGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.pose_adaptor is None and loaded.denoising_unet.audio_drivers is None
    np.testing.assert_allclose(run(loaded), frames, atol=1e-5, rtol=0)
    # A DenoisingNet with IADs needs its audio components.
    with pytest.raises(ValueError, match="audio_encoder/audio_projection are missing"):
        run(create_tiny_pipeline(audio_encoder=None))


def test_half_precision_pipeline_runs_close_to_float32(pipe):
    """Every tensor handed between components follows the component's dtype (bfloat16 runs on any CPU)."""
    half = create_tiny_pipeline(seed=0, randomize_zero_init=True).to(torch.bfloat16)
    frames = run(half, guidance_scale=2.0)
    assert frames.dtype == np.float32 and np.isfinite(frames).all()
    assert np.abs(frames - run(pipe, guidance_scale=2.0)).mean() < 0.02

"""diffusers' generic pipeline behaviours (``PipelineTesterMixin`` in diffusers' ``tests/pipelines/
test_pipelines_common.py``) that apply to a tokenizer-free video pipeline, run against CovOGPipeline (tiny config).

diffusers test -> here (or where it already lives):

* ``test_pipeline_call_signature`` -> ``test_call_signature_and_state``; ``test_components_function`` ->
  ``test_components_function``;
* ``test_inference_batch_consistent`` / ``test_inference_batch_single_identical`` -> ``test_batch_*``;
  ``test_num_images_per_prompt`` -> ``test_num_videos_per_prompt``;
* ``test_dict_tuple_outputs_equivalent`` / ``test_pt_np_pil_outputs_equivalent`` ->
  ``test_output_types_are_equivalent_in_a_batch``; determinism -> ``test_pipeline.py::
  test_same_generator_same_video_and_inputs_matter``; ``test_cfg`` -> ``test_pipeline.py::
  test_classifier_free_guidance_branches``;
* ``test_save_load_local`` -> ``test_pipeline.py::test_save_load_round_trip``;
  ``test_save_load_optional_components`` -> ``test_optional_component_set_to_none_stays_none`` and
  ``test_pipeline.py::test_ablation_pipeline_without_adaptor_and_iad_round_trips``;
* ``test_to_dtype`` -> ``test_to_dtype``; ``test_float16_inference`` -> ``test_pipeline.py::
  test_half_precision_pipeline_runs_close_to_float32`` (bfloat16: float16 kernels need CUDA) and
  ``test_float16_on_an_accelerator``; layerwise casting -> ``test_layerwise_casting_of_the_denoising_net``;
* ``test_attention_slicing_forward_pass`` / xFormers -> ``test_attention_*`` (the reference write/read
  processors wrap whatever processor is installed; a counting processor proves it on both UNets);
* ``test_callback_inputs`` / ``test_callback_cfg`` -> ``test_callback_*``, plus diffusers' ``PipelineCallback``
  classes and interruption;
* ``test_model_cpu_offload_forward_pass`` / ``test_cpu_offload_forward_pass_twice`` -> ``test_model_cpu_offload``
  (accelerate's hooks with ``device="cpu"``); ``test_sequential_cpu_offload_forward_pass`` ->
  ``test_sequential_cpu_offload_on_an_accelerator`` (moving weights to the meta device between calls needs an
  accelerator: on a CPU accelerate fails inside transformers' CLIP embeddings).

Not applicable: prompt / tokenizer / text-encoder tests, IP-Adapter, FreeU and fused QKV (``StableDiffusionMixin``
pipelines), Karras schedulers (CovOG's schedule is fixed by training), ``from_pipe`` (no diffusers pipeline shares
CovOG's components). Progress bars and generation defaults: ``test_pipeline_defaults.py``.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import pytest
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback, SDCFGCutoffCallback
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor
from pipeline_inputs import H, W, make_inputs

from covog_diffusers.models.reference_attention import (
    ReferenceAttentionControl,
    ReferenceReadProcessor,
    ReferenceWriteProcessor,
    is_reference_attention,
)
from covog_diffusers.pipelines import CovOGCFGCutoffCallback, CovOGPipeline
from covog_diffusers.tiny import create_tiny_pipeline

FRAMES, WINDOW, OVERLAP = 10, 6, 2  # two windows: (0, 6), (4, 10)


def tiny(**overrides):
    pipe = create_tiny_pipeline(seed=0, randomize_zero_init=True, **overrides)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    """Treat as read-only; tests that change processors or hooks build their own."""
    return tiny()


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def video_inputs(persons: int = 2, seed: int = 0, frames: int = FRAMES) -> dict:
    inputs = make_inputs(persons=persons, frames=frames, seed=seed)
    inputs.pop("num_inference_steps")
    return inputs


CALL = {
    "num_inference_steps": 2,
    "guidance_scale": 2.0,
    "window_frames": WINDOW,
    "overlap_frames": OVERLAP,
    "output_type": "np",
}


def batched(videos: list[dict]) -> dict:
    """One list per per-video argument (what diffusers' tests build with ``batch_size * [value]``)."""
    return {name: [video[name] for video in videos] for name in videos[0] if name != "sample_rate"}


# ----------------------------------------------------------------------------------------- signature, components
def test_call_signature_and_state(pipe):
    parameters = inspect.signature(CovOGPipeline.__call__).parameters
    optional = {name for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    assert {
        "num_inference_steps",
        "num_videos_per_prompt",
        "generator",
        "latents",
        "output_type",
        "return_dict",
        "guidance_scale",
        "cross_attention_kwargs",
        "callback_on_step_end",
        "callback_on_step_end_tensor_inputs",
        "height",
        "width",
        "num_frames",
    } <= optional
    seen = {}

    def callback(p, step, timestep, kwargs):
        seen.update(
            guidance_scale=p.guidance_scale,
            cfg=p.do_classifier_free_guidance,
            num_timesteps=p.num_timesteps,
            interrupt=p.interrupt,
            cross_attention_kwargs=p.cross_attention_kwargs,
        )
        return kwargs

    pipe(**video_inputs(), **{**CALL, "num_inference_steps": 3}, callback_on_step_end=callback)
    assert seen == {
        "guidance_scale": 2.0,
        "cfg": True,
        "num_timesteps": 3,
        "interrupt": False,
        "cross_attention_kwargs": None,
    }


def test_components_function():
    components = {name: value for name, value in tiny().components.items()}
    pipe = CovOGPipeline(**components)
    assert set(pipe.components) == set(components)
    assert not {"default_num_inference_steps", "default_guidance_scale"} & set(pipe.components)


# ----------------------------------------------------------------------------------------- batches
def test_batch_single_identical(pipe):
    """Each video of a batch (different people counts, hence padded persons; two windows; CFG) equals that video
    generated alone with the same generator (diffusers: max diff < 1e-4)."""
    videos = [
        video_inputs(persons=2, seed=0),
        video_inputs(persons=3, seed=1),
        video_inputs(persons=1, seed=2),
    ]
    batch = pipe(**batched(videos), **CALL, generator=[generator(i) for i in range(3)]).frames
    assert batch.shape == (3, FRAMES, H, W, 3)
    for i, video in enumerate(videos):
        alone = pipe(**video, **CALL, generator=generator(i)).frames
        assert np.abs(batch[i] - alone[0]).max() < 1e-4, i
    assert not np.allclose(batch[0], batch[1], atol=1e-3)


def test_batch_consistent_with_shared_arguments(pipe):
    """An array (not a list) is shared by every video of the batch; lists give one entry per video."""
    videos = [video_inputs(seed=0), video_inputs(seed=1)]
    shared = {**batched(videos), "audio": videos[0]["audio"], "poses": videos[0]["poses"]}
    listed = {**batched(videos), "audio": [videos[0]["audio"]] * 2, "poses": [videos[0]["poses"]] * 2}
    out_shared = pipe(**shared, **CALL, generator=[generator(0), generator(1)]).frames
    out_listed = pipe(**listed, **CALL, generator=[generator(0), generator(1)]).frames
    assert out_shared.shape[0] == 2
    np.testing.assert_array_equal(out_shared, out_listed)
    # Per-video speaker tracks are lists of lists; a tensor batch of reference images works like a list.
    tensor_images = (
        torch.from_numpy(np.stack([v["reference_image"] for v in videos])).permute(0, 3, 1, 2) / 255.0
    )
    out_tensor = pipe(
        **{**listed, "reference_image": tensor_images}, **CALL, generator=[generator(0), generator(1)]
    )
    np.testing.assert_allclose(out_tensor.frames, out_listed, atol=1e-4)


def test_batch_errors_name_the_argument_and_the_video(pipe):
    videos = [video_inputs(seed=0), video_inputs(seed=1), video_inputs(seed=2)]
    inputs = batched(videos)
    with pytest.raises(ValueError, match="poses has 2 entries for a batch of 3 reference images"):
        pipe(**{**inputs, "poses": inputs["poses"][:2]}, **CALL)
    with pytest.raises(ValueError, match=r"video 1: speaking_scores have 1 persons"):
        pipe(
            **{
                **inputs,
                "speaking_scores": [s[:1] if i == 1 else s for i, s in enumerate(inputs["speaking_scores"])],
            },
            **CALL,
        )
    short = video_inputs(seed=3, frames=FRAMES - 2)
    with pytest.raises(ValueError, match=r"same number of frames, got \[10, 10, 8\]"):
        pipe(**batched(videos[:2] + [short]), **CALL)
    with pytest.raises(ValueError, match="2 generators for 6 videos"):
        pipe(**inputs, **CALL, num_videos_per_prompt=2, generator=[generator(0), generator(1)])
    with pytest.raises(ValueError, match="reference_image is an empty list"):
        pipe(**{name: [] for name in inputs}, **CALL)


def test_num_videos_per_prompt(pipe):
    one, two = video_inputs(seed=0), video_inputs(seed=1)
    for batch in (1, 2):
        inputs = batched([one, two][:batch])
        for copies in (1, 2):
            frames = pipe(**inputs, **CALL, num_videos_per_prompt=copies, generator=generator(0)).frames
            assert frames.shape == (batch * copies, FRAMES, H, W, 3)
    # Copies of a video are next to each other, each from its own generator.
    copies = pipe(
        **batched([one, two]), **CALL, num_videos_per_prompt=2, generator=[generator(i) for i in range(4)]
    )
    for index, (video, seed) in enumerate([(one, 0), (one, 1), (two, 2), (two, 3)]):
        alone = pipe(**video, **CALL, generator=generator(seed)).frames[0]
        assert np.abs(copies.frames[index] - alone).max() < 1e-4, index
    assert not np.allclose(copies.frames[0], copies.frames[1], atol=1e-3)


def test_output_types_are_equivalent_in_a_batch(pipe):
    inputs = {**batched([video_inputs(seed=0), video_inputs(seed=1)]), **CALL}

    def run(**kwargs):
        return pipe(**{**inputs, **kwargs}, generator=[generator(0), generator(1)])

    np_frames = run().frames
    pt_frames = run(output_type="pt").frames
    assert pt_frames.shape == (2, FRAMES, 3, H, W)
    assert np.abs(pt_frames.permute(0, 1, 3, 4, 2).numpy() - np_frames).max() < 1e-4
    pil_frames = run(output_type="pil").frames
    assert len(pil_frames) == 2 and all(len(video) == FRAMES for video in pil_frames)
    assert np.abs(np.asarray(pil_frames[1][7], np.float32) - (np_frames[1, 7] * 255).round()).max() <= 1
    assert run(output_type="latent").frames.shape == (2, 4, FRAMES, H // 8, W // 8)
    (tuple_frames,) = run(return_dict=False)
    np.testing.assert_array_equal(tuple_frames, np_frames)


# ----------------------------------------------------------------------------------------- save / load, dtypes
def test_optional_component_set_to_none_stays_none(tmp_path):
    pipe = tiny()
    pipe.pose_adaptor = None  # diffusers' test sets optional components to None on a built pipeline
    before = pipe(**video_inputs(), **CALL, generator=generator(0)).frames
    pipe.save_pretrained(tmp_path)
    loaded = CovOGPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.pose_adaptor is None
    after = loaded(**video_inputs(), **CALL, generator=generator(0)).frames
    assert np.abs(after - before).max() < 1e-4


def test_to_dtype():
    pipe = tiny()
    modules = {name: m for name, m in pipe.components.items() if isinstance(m, torch.nn.Module)}
    assert {m.dtype for m in modules.values()} == {torch.float32}
    pipe.to(dtype=torch.float16)
    assert {name: m.dtype for name, m in modules.items()} == dict.fromkeys(modules, torch.float16)


def test_layerwise_casting_of_the_denoising_net():
    """float8 weight storage, bfloat16 compute: the IAD gates, the audio tokens and the latents follow the compute
    dtype, never the stored one."""
    pipe = tiny().to(torch.bfloat16)
    reference = pipe(**video_inputs(), **CALL, generator=generator(0)).frames
    pipe.denoising_unet.enable_layerwise_casting(
        storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16
    )
    driver = pipe.denoising_unet.audio_drivers[0]
    assert driver.to_k.weight.dtype == driver.gate[0].weight.dtype == torch.float8_e4m3fn
    assert pipe.denoising_unet.dtype == torch.bfloat16
    cast = pipe(**video_inputs(), **CALL, generator=generator(0)).frames
    assert np.isfinite(cast).all() and cast.shape == reference.shape
    assert np.abs(cast - reference).mean() < 0.05


# ----------------------------------------------------------------------------------------- attention processors
def _reference_layers(unet) -> set[str]:
    return {name for name in unet.attn_processors if is_reference_attention(name)}


class CountingProcessor(AttnProcessor2_0):
    """A custom processor: counts its calls and the key/value token counts it is given."""

    def __init__(self):
        super().__init__()
        self.calls, self.context_tokens = 0, []

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        self.calls += 1
        tokens = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        self.context_tokens.append((hidden_states.shape[1], tokens.shape[1]))
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def test_custom_processors_run_inside_the_reference_attention(pipe):
    custom = tiny()
    counters = {}
    for key, unet in (("reference", custom.reference_unet), ("denoising", custom.denoising_unet)):
        counters[key] = {name: CountingProcessor() for name in unet.attn_processors}
        unet.set_attn_processor(dict(counters[key]))
    inputs = {**video_inputs(), **CALL}
    out = custom(**inputs, generator=generator(0)).frames
    steps = CALL["num_inference_steps"] * 2  # two windows
    for name in _reference_layers(custom.reference_unet):
        assert counters["reference"][name].calls == 1, name  # the bank is written once
    for name in _reference_layers(custom.denoising_unet):
        counter = counters["denoising"][name]
        assert counter.calls == steps, name
        # Keys/values are cat([own, reference]): twice the own tokens (same resolution).
        assert all(context == 2 * own for own, context in counter.context_tokens), name
    # The user's processors are back in place, and the result is the default one (same attention maths).
    assert custom.denoising_unet.attn_processors == counters["denoising"]
    assert custom.reference_unet.attn_processors == counters["reference"]
    np.testing.assert_allclose(out, pipe(**inputs, generator=generator(0)).frames, atol=1e-5)


@pytest.mark.parametrize("switch", ["set_default_attn_processor", "enable_attention_slicing"])
def test_attention_switches_take_effect_on_both_unets(pipe, switch, monkeypatch):
    switched = tiny()
    if switch == "set_default_attn_processor":
        for unet in (switched.reference_unet, switched.denoising_unet):
            unet.set_default_attn_processor()
        kind = AttnProcessor
    else:
        switched.enable_attention_slicing(slice_size=1)
        kind = SlicedAttnProcessor
    for unet in (switched.reference_unet, switched.denoising_unet):
        assert {type(p) for p in unet.attn_processors.values()} == {kind}
    seen = set()
    original = kind.__call__

    @functools.wraps(original)  # keeps the signature the wrappers read
    def spy(self, attn, *args, **kwargs):
        seen.add(id(attn))
        return original(self, attn, *args, **kwargs)

    monkeypatch.setattr(kind, "__call__", spy)
    inputs = {**video_inputs(), **CALL}
    out = switched(**inputs, generator=generator(0)).frames
    for unet in (switched.reference_unet, switched.denoising_unet):
        layers = {id(unet.get_submodule(name.removesuffix(".processor"))) for name in _reference_layers(unet)}
        assert layers and layers <= seen
    monkeypatch.undo()
    assert np.abs(out - pipe(**inputs, generator=generator(0)).frames).max() < 1e-3
    if switch == "enable_attention_slicing":
        switched.disable_attention_slicing()
        assert {type(p) for p in switched.denoising_unet.attn_processors.values()} == {AttnProcessor2_0}


def test_reinstalling_wraps_the_processors_set_meanwhile():
    pipe = tiny()
    reference_unet, denoising_unet = pipe.reference_unet, pipe.denoising_unet
    name = min(_reference_layers(denoising_unet))
    control = ReferenceAttentionControl(reference_unet, denoising_unet).install()
    assert isinstance(denoising_unet.attn_processors[name], ReferenceReadProcessor)
    control.install()  # installing twice never wraps a wrapper
    assert isinstance(denoising_unet.attn_processors[name].inner, AttnProcessor2_0)
    for unet in (reference_unet, denoising_unet):
        unet.set_attn_processor(AttnProcessor())  # replaces the wrappers
    control.install()
    read, write = denoising_unet.attn_processors[name], reference_unet.attn_processors[name]
    assert isinstance(read, ReferenceReadProcessor) and type(read.inner) is AttnProcessor
    assert isinstance(write, ReferenceWriteProcessor) and type(write.inner) is AttnProcessor
    control.uninstall()  # restores what was installed last
    assert {type(p) for p in denoising_unet.attn_processors.values()} == {AttnProcessor}


def test_a_pipeline_call_inside_an_installed_control_gives_it_back(pipe):
    """Training keeps a control installed for the whole run and calls the pipeline for validation videos: the
    call wraps the same attention processors and leaves training's wrappers in place."""
    trainer = tiny()
    outer = ReferenceAttentionControl(trainer.reference_unet, trainer.denoising_unet).install()
    installed = dict(trainer.denoising_unet.attn_processors)
    inputs = {**video_inputs(), **CALL}
    np.testing.assert_allclose(
        trainer(**inputs, generator=generator(0)).frames,
        pipe(**inputs, generator=generator(0)).frames,
        atol=1e-5,
    )
    assert trainer.denoising_unet.attn_processors == installed
    outer.write(torch.randn(1, 4, H // 8, W // 8), torch.randn(1, 1, 32))  # the outer bank still fills
    assert _reference_layers(trainer.denoising_unet) == {f"{name}.processor" for name in outer.bank.features}
    outer.uninstall()
    assert {type(p) for p in trainer.denoising_unet.attn_processors.values()} == {AttnProcessor2_0}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="xFormers attention needs CUDA")
def test_xformers_runs_inside_the_reference_attention():
    pytest.importorskip("xformers", reason="xformers is not installed")
    from diffusers.models.attention_processor import XFormersAttnProcessor

    pipe = tiny().to("cuda")
    inputs = {**video_inputs(), **CALL}
    default = pipe(**inputs, generator=generator(0)).frames
    pipe.enable_xformers_memory_efficient_attention()
    assert {type(p) for p in pipe.denoising_unet.attn_processors.values()} == {XFormersAttnProcessor}
    assert np.abs(pipe(**inputs, generator=generator(0)).frames - default).max() < 1e-3


# ----------------------------------------------------------------------------------------- callbacks
def test_callback_inputs_subset_all_and_changed(pipe):
    inputs = {**video_inputs(), **CALL, "output_type": "latent"}

    def subset(p, i, t, kwargs):
        assert set(kwargs) == {"latents"}
        return kwargs

    def everything(p, i, t, kwargs):
        assert set(kwargs) == set(p._callback_tensor_inputs)
        assert (
            kwargs["image_embeds"].shape[0] == 2 * kwargs["latents"].shape[0]
        )  # [unconditional; conditional]
        return kwargs

    pipe(**inputs, callback_on_step_end=subset, callback_on_step_end_tensor_inputs=["latents"])
    all_inputs = pipe._callback_tensor_inputs
    pipe(**inputs, callback_on_step_end=everything, callback_on_step_end_tensor_inputs=all_inputs)

    def zero_last(p, i, t, kwargs):
        if i == p.num_timesteps - 1:
            kwargs["latents"] = torch.zeros_like(kwargs["latents"])
        return kwargs

    latents = pipe(
        **inputs, callback_on_step_end=zero_last, callback_on_step_end_tensor_inputs=all_inputs
    ).frames
    assert latents.abs().sum() == 0  # every window's last latents were replaced


def test_callback_cfg_changes_guidance_each_step(pipe):
    """diffusers' test_callback_cfg: the pipeline reads ``_guidance_scale`` at every step; every window (a full
    denoising run) starts again from the call's scale."""
    scales = []

    def increase(p, i, t, kwargs):
        scales.append((p.current_window[0], p.guidance_scale))
        p._guidance_scale += 1.0
        return kwargs

    pipe(**video_inputs(), **{**CALL, "num_inference_steps": 3}, callback_on_step_end=increase)
    assert pipe.guidance_scale == CALL["guidance_scale"] + pipe.num_timesteps
    assert scales == [(0, 2.0), (0, 3.0), (0, 4.0), (1, 2.0), (1, 3.0), (1, 4.0)]


def _unet_batches(pipe):
    batches = []
    handle = pipe.denoising_unet.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(
            (args[0].shape[0], kwargs["encoder_hidden_states"].clone())
        ),
        with_kwargs=True,
    )
    return batches, handle


def test_cfg_cutoff_callback():
    pipe = tiny()
    inputs = {**video_inputs(), **CALL, "num_inference_steps": 4}
    batches, handle = _unet_batches(pipe)
    try:
        cut = pipe(
            **inputs,
            callback_on_step_end=CovOGCFGCutoffCallback(cutoff_step_ratio=0.5),
            generator=generator(0),
        )
    finally:
        handle.remove()
    # int(4 * 0.5) = 2: steps 0-2 guided, step 3 conditional only; in both windows.
    assert [b for b, _ in batches] == [2, 2, 2, 1] * 2
    assert torch.count_nonzero(batches[3][1]) > 0  # the conditional CLIP embedding, not the zeroed one
    assert pipe.guidance_scale == 0.0

    def plain_cutoff(p, i, t, kwargs):  # the same without slicing image_embeds: the pipeline re-derives them
        if i == 2:
            p._guidance_scale = 0.0
        return kwargs

    manual = pipe(**inputs, callback_on_step_end=plain_cutoff, generator=generator(0))
    np.testing.assert_array_equal(cut.frames, manual.frames)
    full = pipe(**inputs, generator=generator(0))
    assert not np.allclose(cut.frames, full.frames, atol=1e-5)
    # By index, combined with another PipelineCallback.

    class CountSteps(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            self.steps = getattr(self, "steps", 0) + 1
            return callback_kwargs

    counter = CountSteps()
    both = MultiPipelineCallbacks(
        [CovOGCFGCutoffCallback(cutoff_step_index=2, cutoff_step_ratio=None), counter]
    )
    by_index = pipe(**inputs, callback_on_step_end=both, generator=generator(0))
    np.testing.assert_array_equal(by_index.frames, cut.frames)
    assert counter.steps == 8


def test_text_prompt_callbacks_are_rejected_up_front(pipe):
    with pytest.raises(ValueError, match=r"callback tensor inputs \['prompt_embeds'\] not in"):
        pipe(**video_inputs(), **CALL, callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=0.5))


def test_interrupt_stops_and_returns_the_frames_made(pipe):
    calls = []

    def stop(p, i, t, kwargs):
        calls.append((p.current_window[0], i))
        p._interrupt = True
        return kwargs

    frames = pipe(**video_inputs(), **CALL, callback_on_step_end=stop, generator=generator(0)).frames
    assert calls == [(0, 0)] and pipe.interrupt
    assert frames.shape == (1, WINDOW, H, W, 3)  # the first window only
    assert pipe(**video_inputs(), **CALL).frames.shape[1] == FRAMES and not pipe.interrupt  # reset per call


# ----------------------------------------------------------------------------------------- offload
def test_model_cpu_offload(pipe):
    import accelerate

    offloaded = tiny()
    offloaded.enable_model_cpu_offload(device="cpu")
    modules = {n: m for n, m in offloaded.components.items() if isinstance(m, torch.nn.Module)}
    # model_cpu_offload_seq names every model component: each one got accelerate's CpuOffload hook.
    assert {
        n for n, m in modules.items() if isinstance(getattr(m, "_hf_hook", None), accelerate.hooks.CpuOffload)
    } == set(modules)
    inputs = {**video_inputs(), **CALL}
    expected = pipe(**inputs, generator=generator(0)).frames
    for _ in range(2):  # diffusers' test_cpu_offload_forward_pass_twice
        assert np.abs(offloaded(**inputs, generator=generator(0)).frames - expected).max() < 2e-4


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="sequential CPU offload (weights on the meta device) needs an accelerator",
)
def test_sequential_cpu_offload_on_an_accelerator(pipe):
    offloaded = tiny()
    offloaded.enable_sequential_cpu_offload()
    inputs = {**video_inputs(), **CALL}
    expected = pipe(**inputs, generator=generator(0)).frames
    assert np.abs(offloaded(**inputs, generator=generator(0)).frames - expected).max() < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 kernels need CUDA")
def test_float16_on_an_accelerator(pipe):
    half = tiny().to("cuda", torch.float16)
    inputs = {**video_inputs(), **CALL}
    frames = half(**inputs, generator=generator(0)).frames
    assert np.abs(frames - pipe(**inputs, generator=generator(0)).frames).max() < 5e-2

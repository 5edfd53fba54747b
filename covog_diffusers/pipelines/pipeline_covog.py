"""``CovOGPipeline``: multi-human talking video from a reference image, per-person poses, audio and speaking scores.

Conditioning, as in the paper (AnimateAnyone + MPE + IAD):

* reference image -> VAE latents -> ReferenceNet (with the pose adaptor's embedding of the reference poses added
  after its ``conv_in``) -> self-attention bank, read by the DenoisingNet (reference attention); the CLIP image
  embedding of the reference is the cross-attention context of both UNets;
* per-frame poses -> pose guider (MPE) -> added after the DenoisingNet's ``conv_in``;
* mixed audio -> wav2vec2 over each window plus 1 s of context (:func:`~covog_diffusers.models.audio.
  window_audio_features`, which training uses too) -> :class:`AudioProjection` tokens -> IAD, gated per speaker
  by the speaking scores and restricted to each speaker's face box (from the nose/eye keypoints,
  :func:`mit_dataset.keypoints.head_box`).

Classifier-free guidance (``guidance_scale > 1``): the batch is ``[unconditional, conditional]``. The unconditional
branch is exactly what training drops (10 % of the samples): the CLIP image embedding is zeroed **and** the
reference attention is dropped (:meth:`ReferenceBank.set_guidance`: the DenoisingNet attends to its own tokens
only). Poses, audio tokens and speaking scores are the same in both branches, so guidance strengthens the reference
identity and appearance. The conditional branch gets the reference.

Noise schedule: DDIM, v-prediction, trailing timesteps, betas rescaled to zero terminal SNR
(:data:`SCHEDULER_CONFIG`); training must noise with the same betas (``DDPMScheduler.from_config(
pipe.scheduler.config)``).

Long videos are generated in overlapping windows (:mod:`covog_diffusers.pipelines.windows`); batches of videos
(lists of inputs, ``num_videos_per_prompt``) are described in :mod:`covog_diffusers.pipelines.batch`.

Generation defaults travel with a saved pipeline (:meth:`CovOGPipeline.set_generation_defaults`): the size is the
DenoisingNet's ``config.sample_size`` times the VAE factor (diffusers' convention, an int or an ``(h, w)`` pair);
steps, guidance scale and window sizes are pipeline config entries written to ``model_index.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

from ..loaders import CovOGLoraLoaderMixin
from ..models.audio import AudioProjection, audio_context_frames, window_audio_features
from ..models.denoising_net import CovOGDenoisingNet
from ..models.pose_encoder import MultiHumanPoseEncoder
from ..models.reference_attention import ReferenceAttentionControl
from .batch import VideoBatch
from .conditioning import clip_image_embeds, uint8_to_pixels, vae_latents
from .generation_defaults import GenerationDefaultsMixin, uses_generation_defaults
from .inputs import CovOGInputs
from .mit import inputs_from_mit_row
from .pipeline_output import CovOGPipelineOutput, concatenate_frames
from .windows import plan_windows

#: The one noise schedule of CovOG, for training and inference (SD1.5 betas, zero terminal SNR, v-prediction).
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "rescale_betas_zero_snr": True,
    "clip_sample": False,
    "set_alpha_to_one": True,
    "steps_offset": 1,
}

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def create_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def rescale_noise_cfg(
    noise_cfg: torch.Tensor, noise_pred_cond: torch.Tensor, guidance_rescale: float
) -> torch.Tensor:
    """Lin et al. 2023 (zero-terminal-SNR paper), sec. 3.4: rescale the guided prediction's std to the
    conditional one's, mixing by ``guidance_rescale``. (diffusers' copy lives in the Stable Diffusion pipeline
    module, whose import loads the CLIP text stack and prints torchvision warnings.)"""
    dims = list(range(1, noise_cfg.ndim))
    std_cond = noise_pred_cond.std(dim=dims, keepdim=True)
    std_cfg = noise_cfg.std(dim=dims, keepdim=True)
    rescaled = noise_cfg * (std_cond / std_cfg)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


class CovOGPipeline(GenerationDefaultsMixin, DiffusionPipeline, CovOGLoraLoaderMixin):
    """CovOG generation pipeline (see the module docstring). Load with ``CovOGPipeline.from_pretrained(dir)``.

    Generation defaults (used by ``__call__``, ``covog generate`` and ``mit-bench predict`` when an argument is
    not given) are recorded with :meth:`set_generation_defaults` before ``save_pretrained`` and read back from
    :attr:`generation_defaults`. State a ``callback_on_step_end`` may read or change, as in diffusers' pipelines:
    :attr:`guidance_scale` (``pipe._guidance_scale``), :attr:`do_classifier_free_guidance`,
    :attr:`num_timesteps`, :attr:`cross_attention_kwargs`, :attr:`interrupt`, and :attr:`current_window`.
    """

    model_cpu_offload_seq = "image_encoder->pose_adaptor->reference_unet->audio_encoder->audio_projection->pose_guider->denoising_unet->vae"
    #: The pose adaptor is optional (AnimateAnyone had none); audio components are optional for the
    #: "without IAD" ablation.
    _optional_components = ["pose_adaptor", "audio_encoder", "audio_projection"]
    _callback_tensor_inputs = ["latents", "noise_pred", "image_embeds"]

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        feature_extractor,  # CLIPImageProcessor (or its PIL variant)
        reference_unet: UNet2DConditionModel,
        denoising_unet: CovOGDenoisingNet,
        pose_guider: MultiHumanPoseEncoder,
        scheduler: DDIMScheduler,
        pose_adaptor: MultiHumanPoseEncoder | None = None,
        audio_encoder: Wav2Vec2Model | None = None,
        audio_projection: AudioProjection | None = None,
        default_num_inference_steps: int = 25,
        default_guidance_scale: float = 3.5,
        default_window_frames: int = 16,
        default_overlap_frames: int = 6,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            image_encoder=image_encoder,
            feature_extractor=feature_extractor,
            reference_unet=reference_unet,
            denoising_unet=denoising_unet,
            pose_guider=pose_guider,
            pose_adaptor=pose_adaptor,
            audio_encoder=audio_encoder,
            audio_projection=audio_projection,
            scheduler=scheduler,
        )
        self.register_to_config(
            default_num_inference_steps=default_num_inference_steps,
            default_guidance_scale=default_guidance_scale,
            default_window_frames=default_window_frames,
            default_overlap_frames=default_overlap_frames,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        self.video_processor = VideoProcessor(do_resize=False, vae_scale_factor=self.vae_scale_factor)
        self.current_window: tuple[int, int, int] | None = None
        self._guidance_scale = default_guidance_scale
        self._num_timesteps = 0
        self._cross_attention_kwargs = None
        self._interrupt = False

    # ------------------------------------------------------------------ state (diffusers pipeline conventions)
    @property
    def guidance_scale(self) -> float:
        """Guidance weight ``w`` of the current step (Imagen's eq. 2; ``<= 1``: no guidance). Callbacks may set
        ``pipe._guidance_scale``; it is restored to the call's value at every window."""
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1

    @property
    def num_timesteps(self) -> int:
        """Denoising steps per window (a callback's ``step_index`` runs from 0 to ``num_timesteps - 1`` in every
        window)."""
        return self._num_timesteps

    @property
    def cross_attention_kwargs(self) -> dict | None:
        return self._cross_attention_kwargs

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    def interrupt_generation(self) -> None:
        """Stop after the current denoising step (e.g. from a callback); the frames made so far are returned."""
        self._interrupt = True

    @property
    def uses_audio(self) -> bool:
        return (
            self.denoising_unet.audio_drivers is not None
            and self.audio_encoder is not None
            and self.audio_projection is not None
        )

    # ------------------------------------------------------------------ checks
    def check_components(self) -> None:
        """Channel/dimension agreement between components (ValueError naming the mismatch)."""
        unet = self.denoising_unet
        c0 = unet.config.block_out_channels[0]
        for name in ("pose_guider", "pose_adaptor"):
            encoder = getattr(self, name)
            if encoder is None:
                continue
            if encoder.config.out_channels != c0:
                raise ValueError(
                    f"{name} outputs {encoder.config.out_channels} channels, the UNets start with {c0}"
                )
            if encoder.downscale_factor != self.vae_scale_factor:
                raise ValueError(
                    f"{name} downsamples by {encoder.downscale_factor}, the VAE by {self.vae_scale_factor}"
                )
        clip_dim = self.image_encoder.config.projection_dim
        for name in ("denoising_unet", "reference_unet"):
            dim = getattr(self, name).config.cross_attention_dim
            if dim != clip_dim:
                raise ValueError(
                    f"{name} cross_attention_dim {dim} != image encoder projection_dim {clip_dim}"
                )
        if unet.audio_drivers is not None and (self.audio_encoder is None or self.audio_projection is None):
            raise ValueError(
                "the DenoisingNet has IADs (use_iad=True) but audio_encoder/audio_projection are missing"
            )
        if self.uses_audio:
            proj = self.audio_projection.config
            enc = self.audio_encoder.config
            if (proj.num_layers, proj.feature_dim) != (enc.num_hidden_layers, enc.hidden_size):
                raise ValueError(
                    f"audio_projection expects {proj.num_layers} layers x {proj.feature_dim}, the audio encoder has "
                    f"{enc.num_hidden_layers} x {enc.hidden_size}"
                )
            if proj.cross_attention_dim != unet.config.audio_cross_attention_dim:
                raise ValueError(
                    f"audio_projection outputs {proj.cross_attention_dim}-d tokens, the IAD expects "
                    f"{unet.config.audio_cross_attention_dim}"
                )

    def check_inputs(
        self, output_type, num_videos_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs
    ) -> list[str]:
        """Validate the call options; returns the callback's tensor inputs."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if int(num_videos_per_prompt) != num_videos_per_prompt or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt}")
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback tensor inputs {unknown} not in {self._callback_tensor_inputs}")
        return tensor_inputs

    # ------------------------------------------------------------------ encoders
    def encode_reference(
        self, batch: VideoBatch, device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """CLIP image embeds ``(B, 1, D)``, scaled reference latents ``(B, 4, h, w)`` and the pose adaptor's
        embedding of the reference poses ``(B, C0, h, w)`` (None without adaptor), through the conditioning
        training uses (:mod:`covog_diffusers.pipelines.conditioning`)."""
        image = torch.cat([uint8_to_pixels(video.reference_image) for video in batch.videos])
        embeds = clip_image_embeds(self.image_encoder, self.feature_extractor, image)
        latents = vae_latents(self.vae, image)
        pose_embedding = None
        if self.pose_adaptor is not None:
            maps = batch.reference_pose_maps().to(device, self.pose_adaptor.dtype)
            pose_embedding = self.pose_adaptor(maps, batch.person_mask.to(device))
        return embeds, latents, pose_embedding

    def _encode_audio(self, inputs: CovOGInputs, start: int, end: int, device) -> torch.Tensor:
        """``(1, end - start, M, D)`` audio tokens of frames ``[start, end)``: wav2vec2 hears the window with
        its context, silence beyond the video (:func:`~covog_diffusers.models.audio.window_audio_features`)."""
        window = self.audio_projection.config.window
        context = audio_context_frames(window)
        samples = inputs.audio_span(start - context, end + context)
        features = window_audio_features(
            self.audio_encoder, samples, inputs.sample_rate, end - start, fps=inputs.fps, window=window
        )
        return self.audio_projection(features[None].to(device, self.audio_projection.dtype))

    def _window_conditions(
        self, batch: VideoBatch, start: int, end: int, latent_hw, device, dtype, repeats
    ) -> dict:
        """DenoisingNet keyword inputs for frames ``[start, end)``, batch ``B * repeats`` (each video's conditions
        ``repeats`` times in a row)."""
        maps = batch.pose_maps_for(start, end).to(device, self.pose_guider.dtype)  # (B, P, n, 3, H, W)
        mask = batch.person_mask.to(device)
        pose = self.pose_guider.encode_frames(maps, mask)  # (B, C0, n, h, w)
        cond = {"pose_features": pose.to(dtype)}
        if self.uses_audio:
            tokens = [self._encode_audio(video, start, end, device) for video in batch.videos]
            cond["audio_tokens"] = torch.cat(tokens).to(dtype)
            cond["speaking_scores"] = batch.speaking_scores_for(start, end).to(device, dtype)
            cond["face_masks"] = batch.face_masks_for(start, end, *latent_hw).to(device, dtype)
            cond["person_mask"] = mask
        return {name: value.repeat_interleave(repeats, dim=0) for name, value in cond.items()}

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int = 8) -> torch.Tensor:
        """``(B, 4, n, h, w)`` scaled latents -> ``(B, 3, n, H, W)`` float32 VAE output (about [-1, 1]) on the CPU,
        ``decode_chunk_size`` frames at a time."""
        videos, frames = latents.shape[0], latents.shape[2]
        flat = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) / self.vae.config.scaling_factor
        chunks = []
        for i in range(0, flat.shape[0], max(1, decode_chunk_size)):
            chunks.append(
                self.vae.decode(flat[i : i + decode_chunk_size].to(self.vae.dtype)).sample.float().cpu()
            )
        video = torch.cat(chunks)
        return video.reshape(videos, frames, *video.shape[1:]).permute(0, 2, 1, 3, 4)

    def prepare_latents(
        self, shape, generator, device, dtype, latents: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Initial noise ``shape`` (or a copy of ``latents``) scaled by the scheduler's ``init_noise_sigma``."""
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device, dtype).clone()
        return latents * self.scheduler.init_noise_sigma

    # ------------------------------------------------------------------ denoising
    def _denoise_window(
        self,
        latents: torch.Tensor,
        fixed_latents: torch.Tensor | None,
        timesteps: torch.Tensor,
        image_embeds: torch.Tensor,
        conditions: dict,
        control: ReferenceAttentionControl,
        guidance_rescale: float,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs: list[str],
        progress_bar,
    ) -> torch.Tensor:
        """Denoise one window ``(V, 4, n, h, w)``; ``fixed_latents`` ``(V, 4, k, h, w)`` pin its first ``k``
        frames (see :mod:`covog_diffusers.pipelines.windows`). ``image_embeds`` ``(V, 1, D)`` and ``conditions``
        are the conditional branch's; the unconditional one is laid out at every step where
        :attr:`do_classifier_free_guidance` holds, so a callback may switch guidance on or off."""
        videos = latents.shape[0]
        keep_reference = torch.arange(2 * videos) >= videos  # CFG batch: [False] * V + [True] * V
        k = 0 if fixed_latents is None else fixed_latents.shape[2]
        fixed_noise = latents[:, :, :k].clone()
        doubled = {name: torch.cat([value, value]) for name, value in conditions.items()}
        for i, t in enumerate(timesteps):
            if self.interrupt:
                break
            if k:
                latents[:, :, :k] = self.scheduler.add_noise(fixed_latents, fixed_noise, t.reshape(1))
            do_cfg = self.do_classifier_free_guidance
            control.bank.set_guidance(do_cfg)
            # The unconditional half drops the reference exactly as training's conditioning dropout does.
            embeds = (
                control.drop_reference(image_embeds.repeat(2, 1, 1), keep_reference)
                if do_cfg
                else image_embeds
            )
            model_input = torch.cat([latents, latents]) if do_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            noise_pred = self.denoising_unet(
                model_input,
                t,
                encoder_hidden_states=embeds,
                cross_attention_kwargs=self.cross_attention_kwargs,
                return_dict=False,
                **(doubled if do_cfg else conditions),
            )[0]
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + self.guidance_scale * (cond - uncond)
                if guidance_rescale > 0:
                    noise_pred = rescale_noise_cfg(noise_pred, cond, guidance_rescale)
            latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                local = {"latents": latents, "noise_pred": noise_pred, "image_embeds": embeds}
                outputs = callback_on_step_end(
                    self, i, t, {name: local[name] for name in callback_on_step_end_tensor_inputs}
                )
                latents = outputs.pop("latents", latents)
                # The conditional embeddings are the last rows ([unconditional; conditional] under CFG).
                image_embeds = outputs.pop("image_embeds", image_embeds)[-videos:]
            progress_bar.update()
        if k:
            latents[:, :, :k] = fixed_latents
        return latents

    # ------------------------------------------------------------------ call
    @torch.no_grad()
    def __call__(
        self,
        reference_image=None,
        reference_poses=None,
        poses=None,
        audio=None,
        sample_rate: int | None = 16_000,
        speaking_scores=None,
        speaker_audios=None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        window_frames: int | None = None,
        overlap_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_rescale: float = 0.0,
        num_videos_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        decode_chunk_size: int = 8,
        frames_callback: Callable[[int, Any], None] | None = None,
        face_boxes=None,
        keypoint_size: tuple[int, int] | None = None,
        fps: float = 25.0,
    ) -> CovOGPipelineOutput | tuple:
        r"""Generate talking videos. Arguments left None take the pipeline's :attr:`generation_defaults`.

        Args:
            reference_image: PIL image, ``(H0, W0, 3)`` uint8/float array or ``(3, H0, W0)`` tensor in [0, 1]; a
                list of them (or a 4-D array/tensor) is a batch of ``B`` videos, and every per-video argument below
                is then a list with one entry per video or one value shared by all
                (:mod:`covog_diffusers.pipelines.batch`).
            reference_poses: the persons in the reference image, ``(P, 59, 3)`` keypoints (MIT layout, pixels of
                ``keypoint_size``) or ``(P, 3, H, W)`` pose maps in [0, 1] (or uint8).
            poses: per-frame poses, ``(P, F, 59, 3)`` keypoints or ``(P, F, 3, H, W)`` maps. Keypoints are rendered
                with :func:`mit_dataset.pose_render.render_pose_maps` and give the IAD face boxes
                (:func:`mit_dataset.keypoints.head_box`); with maps pass ``face_boxes`` ``(P, F, 4)``.
            audio: mono waveform ``(S,)`` at ``sample_rate`` (the mix of all speakers).
            speaking_scores: ``(P, F)`` in [-1, 1] (about 1 speaking, -1 silent). May be omitted when
                ``speaker_audios`` (one mono track per person) is given: the scores then come from
                :func:`mit_dataset.vad.speaking_scores_from_tracks`, and the tracks' mix drives the audio
                tokens if ``audio`` is None.
            height, width: output size (multiples of the VAE factor); default: the pipeline's, else the reference
                image's size.
            num_frames: frames to generate (default: all pose frames; the videos of a batch must agree).
            window_frames, overlap_frames: long-video windows; the last ``overlap_frames`` frames of a window
                are fixed as the first of the next (default overlap: the pipeline's, at most half a window).
            num_inference_steps, guidance_scale, guidance_rescale: DDIM steps and classifier-free guidance
                (unconditional branch: zeroed CLIP embedding and no reference attention, as dropped in training).
            num_videos_per_prompt: videos per set of conditions (different noise), next to each other in the output.
            generator, latents: noise source (one generator, or one per output video), or initial noise
                ``(B * num_videos_per_prompt, 4, F, H/8, W/8)`` for the whole videos.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"`` (see :class:`CovOGPipelineOutput`).
            cross_attention_kwargs: passed to the DenoisingNet's attention processors.
            callback_on_step_end: ``callback(pipe, step, timestep, callback_kwargs) -> dict`` after each step, or a
                :class:`~diffusers.callbacks.PipelineCallback` (e.g.
                :class:`~covog_diffusers.pipelines.callbacks.CovOGCFGCutoffCallback`); ``callback_kwargs`` holds
                ``callback_on_step_end_tensor_inputs`` among ``latents``, ``noise_pred`` and ``image_embeds`` (what
                the DenoisingNet received); returned ``latents``/``image_embeds`` are used from the next step on.
                Each window is a full denoising run: ``step`` counts within it, ``pipe.current_window`` is
                ``(index, start, end)`` and the guidance scale is restored at its start.
            decode_chunk_size: frames decoded by the VAE at once.
            frames_callback: ``frames_callback(start_frame, frames)`` receives each window's new frames (in the
                ``output_type`` format, with the batch axis) as soon as they are decoded; they are then not
                kept, and ``frames`` of the output is None (constant memory for any video length).
            face_boxes: ``(P, F, 4)`` xyxy face boxes (pixels of ``keypoint_size``) overriding the head boxes.
            keypoint_size: ``(H0, W0)`` pixel space of keypoints and boxes; default the reference image's size.
            fps: video frame rate (audio alignment).
        """
        # 0. Defaults.
        defaults = self.generation_defaults
        height = defaults["height"] if height is None else height
        width = defaults["width"] if width is None else width
        if num_inference_steps is None:
            num_inference_steps = defaults["num_inference_steps"]
        guidance_scale = defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        window_frames = defaults["window_frames"] if window_frames is None else window_frames
        if overlap_frames is None:
            overlap_frames = min(defaults["overlap_frames"], window_frames // 2)

        # 1. Check the options, the components and every input (before any model runs).
        tensor_inputs = self.check_inputs(
            output_type, num_videos_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs
        )
        self.check_generation_settings(num_inference_steps, guidance_scale, window_frames, overlap_frames)
        self.check_components()
        batch = VideoBatch.prepare(
            reference_image,
            {
                "reference_poses": reference_poses,
                "poses": poses,
                "audio": audio,
                "speaking_scores": speaking_scores,
                "speaker_audios": speaker_audios,
                "face_boxes": face_boxes,
                "keypoint_size": keypoint_size,
            },
            sample_rate=sample_rate,
            height=height,
            width=width,
            num_frames=num_frames,
            vae_scale_factor=self.vae_scale_factor,
            max_speakers=self.denoising_unet.config.max_speakers,
            fps=fps,
            need_face_boxes=self.uses_audio,
        )
        videos = len(batch) * num_videos_per_prompt
        if isinstance(generator, list) and len(generator) != videos:
            raise ValueError(
                f"{len(generator)} generators for {videos} videos ({len(batch)} x num_videos_per_prompt="
                f"{num_videos_per_prompt}): give one generator or one per video"
            )
        device = self._execution_device
        dtype = self.denoising_unet.dtype
        h, w = batch.height // self.vae_scale_factor, batch.width // self.vae_scale_factor
        channels = self.denoising_unet.config.in_channels
        expected = (videos, channels, batch.num_frames, h, w)
        if latents is not None and tuple(latents.shape) != expected:
            raise ValueError(f"latents must have shape {expected}, got {tuple(latents.shape)}")
        windows = plan_windows(batch.num_frames, window_frames, overlap_frames)
        self._guidance_scale = guidance_scale
        self._cross_attention_kwargs = cross_attention_kwargs
        self._interrupt = False

        # 2. Timesteps (every window runs all of them).
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)

        outputs, previous = [], None
        with (
            ReferenceAttentionControl(self.reference_unet, self.denoising_unet) as control,
            self.progress_bar(total=len(windows) * len(timesteps)) as progress_bar,
        ):
            # 3. Reference: CLIP embedding, and the ReferenceNet's self-attention bank (written once).
            embeds, reference_latents, pose_embedding = self.encode_reference(batch, device)
            control.write(
                reference_latents.to(self.reference_unet.dtype),
                embeds.to(self.reference_unet.dtype),
                pose_embedding=pose_embedding,
            )
            control.bank.repeat_interleave(num_videos_per_prompt)
            image_embeds = embeds.repeat_interleave(num_videos_per_prompt, dim=0).to(dtype)

            # 4. Windows: noise, conditions, denoising, decoding.
            for index, (start, end) in enumerate(windows):
                self.current_window = (index, start, end)
                self._guidance_scale = guidance_scale
                window_latents = self.prepare_latents(
                    (videos, channels, end - start, h, w),
                    generator,
                    device,
                    dtype,
                    None if latents is None else latents[:, :, start:end],
                )
                conditions = self._window_conditions(
                    batch, start, end, (h, w), device, dtype, num_videos_per_prompt
                )
                k = 0 if previous is None else overlap_frames
                window_latents = self._denoise_window(
                    window_latents,
                    previous[:, :, previous.shape[2] - k :] if k else None,
                    timesteps,
                    image_embeds,
                    conditions,
                    control,
                    guidance_rescale,
                    callback_on_step_end,
                    tensor_inputs,
                    progress_bar,
                )
                previous = window_latents
                new = window_latents[:, :, k:]
                if output_type == "latent":
                    chunk = new
                else:
                    video = self.decode_latents(new, decode_chunk_size)
                    chunk = self.video_processor.postprocess_video(video, output_type=output_type)
                if frames_callback is not None:
                    frames_callback(start + k, chunk)
                else:
                    outputs.append(chunk)
                if self.interrupt:
                    break
        self.current_window = None

        # 5. Offload all models.
        self.maybe_free_model_hooks()

        frames = concatenate_frames(outputs, output_type) if outputs else None
        if not return_dict:
            return (frames,)
        return CovOGPipelineOutput(frames=frames)

    # ------------------------------------------------------------------ MIT rows
    @uses_generation_defaults
    def inputs_from_mit_row(
        self, row: dict, height: int | None = None, width: int | None = None, **kwargs
    ) -> dict:
        """Keyword arguments for ``pipe(**inputs)`` from a loaded MIT row
        (:func:`covog_diffusers.pipelines.mit.inputs_from_mit_row`: ``num_frames``, ``start_frame``,
        ``reference_frame``, ...), at this pipeline's default size; a ``height`` or ``width`` given alone replaces
        only that side of it."""
        defaults = self.generation_defaults
        height = defaults["height"] if height is None else height
        width = defaults["width"] if width is None else width
        return inputs_from_mit_row(row, height=height, width=width, **kwargs)

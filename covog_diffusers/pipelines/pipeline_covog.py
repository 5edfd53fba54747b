"""``CovOGPipeline``: multi-human talking video from a reference image, per-person poses, audio and speaking scores.

Conditioning, as in the paper (AnimateAnyone + MPE + IAD):

* reference image -> VAE latents -> ReferenceNet (with the pose adaptor's embedding of the reference poses added
  after its ``conv_in``) -> self-attention bank, read by the DenoisingNet (reference attention); the CLIP image
  embedding of the reference is the cross-attention context of both UNets;
* per-frame poses -> pose guider (MPE) -> added after the DenoisingNet's ``conv_in``;
* mixed audio -> wav2vec2 -> :class:`AudioProjection` tokens -> IAD, gated per speaker by the speaking scores and
  restricted to each speaker's face box (from the nose/eye keypoints, :func:`mit_dataset.keypoints.head_box`).

Classifier-free guidance (``guidance_scale > 1``): the batch is ``[unconditional, conditional]``. The unconditional
branch is exactly what training drops (10 % of the samples): the CLIP image embedding is zeroed **and** the
reference attention is dropped (``ReferenceBank.keep = False``: the DenoisingNet attends to its own tokens only).
Poses, audio tokens and speaking scores are the same in both branches, so guidance strengthens the reference
identity and appearance. The conditional branch gets the reference.

Noise schedule: DDIM, v-prediction, trailing timesteps, betas rescaled to zero terminal SNR
(:data:`SCHEDULER_CONFIG`); training must noise with the same betas (``DDPMScheduler.from_config(
pipe.scheduler.config)``).

Long videos are generated in overlapping windows (:mod:`covog_diffusers.pipelines.windows`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import CLIPVisionModelWithProjection, Wav2Vec2Model

from ..loaders import CovOGLoraLoaderMixin
from ..models.audio import AudioProjection, wav2vec2_frame_features
from ..models.denoising_net import CovOGDenoisingNet
from ..models.pose_encoder import MultiHumanPoseEncoder
from ..models.reference_attention import ReferenceAttentionControl
from .conditioning import clip_image_embeds, uint8_to_pixels, vae_latents
from .inputs import CovOGInputs, prepare_inputs
from .mit import inputs_from_mit_row
from .pipeline_output import CovOGPipelineOutput
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

#: Frames of audio context encoded on each side of a window (wav2vec2 needs context; 1 s).
AUDIO_CONTEXT_FRAMES = 25

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


def create_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG)


def rescale_noise_cfg(
    noise_cfg: torch.Tensor, noise_pred_cond: torch.Tensor, guidance_rescale: float
) -> torch.Tensor:
    """Lin et al. 2023 (zero-terminal-SNR paper), sec. 3.4: rescale the guided prediction's std to the
    conditional one's, mixing by ``guidance_rescale``."""
    dims = list(range(1, noise_cfg.ndim))
    std_cond = noise_pred_cond.std(dim=dims, keepdim=True)
    std_cfg = noise_cfg.std(dim=dims, keepdim=True)
    rescaled = noise_cfg * (std_cond / std_cfg)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


class CovOGPipeline(DiffusionPipeline, CovOGLoraLoaderMixin):
    """CovOG generation pipeline (see the module docstring). Load with ``CovOGPipeline.from_pretrained(dir)``."""

    model_cpu_offload_seq = "image_encoder->pose_adaptor->reference_unet->audio_encoder->audio_projection->pose_guider->denoising_unet->vae"
    #: The pose adaptor is optional (AnimateAnyone had none); audio components are optional for the
    #: "without IAD" ablation.
    _optional_components = ["pose_adaptor", "audio_encoder", "audio_projection"]
    _callback_tensor_inputs = ["latents", "noise_pred"]

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
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if vae is not None else 8
        self.current_window: tuple[int, int, int] | None = None
        self._interrupt = False

    # ------------------------------------------------------------------ properties / checks
    @property
    def interrupt(self) -> bool:
        return self._interrupt

    def interrupt_generation(self) -> None:
        """Stop after the current denoising step (e.g. from a callback)."""
        self._interrupt = True

    @property
    def uses_audio(self) -> bool:
        return (
            self.denoising_unet.audio_drivers is not None
            and self.audio_encoder is not None
            and self.audio_projection is not None
        )

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

    # ------------------------------------------------------------------ encoders
    def _encode_reference(self, inputs: CovOGInputs, device):
        """CLIP image embeds ``(1, 1, D)``, scaled reference latents ``(1, 4, h, w)`` and the pose adaptor's
        embedding of the reference poses ``(1, C0, h, w)`` (None without adaptor)."""
        image = uint8_to_pixels(inputs.reference_image)
        embeds = clip_image_embeds(self.image_encoder, self.feature_extractor, image)
        latents = vae_latents(self.vae, image)
        pose_embedding = None
        if self.pose_adaptor is not None:
            maps = torch.from_numpy(inputs.reference_pose_maps)[None].to(device, self.pose_adaptor.dtype)
            pose_embedding = self.pose_adaptor(maps)
        return embeds, latents, pose_embedding

    def _encode_audio(self, inputs: CovOGInputs, start: int, end: int, device) -> torch.Tensor:
        """``(1, end - start, M, D)`` audio tokens; wav2vec2 sees ``AUDIO_CONTEXT_FRAMES`` extra frames each side."""
        ctx = AUDIO_CONTEXT_FRAMES + self.audio_projection.config.window
        a, b = max(0, start - ctx), min(inputs.num_frames, end + ctx)
        features = wav2vec2_frame_features(
            self.audio_encoder, inputs.audio_span(a, b), inputs.sample_rate, b - a, fps=inputs.fps
        )
        tokens = self.audio_projection(features[None].to(device, self.audio_projection.dtype))
        return tokens[:, start - a : end - a]

    def _window_conditions(self, inputs: CovOGInputs, start: int, end: int, latent_hw, device, dtype) -> dict:
        """DenoisingNet keyword inputs for frames ``[start, end)`` (batch 1; every person is valid)."""
        maps = inputs.pose_maps_for(start, end).to(device, self.pose_guider.dtype)
        pose = self.pose_guider.encode_frames(maps.transpose(0, 1)[None])  # (1, C0, n, h, w)
        cond = {"pose_features": pose.to(dtype)}
        if self.uses_audio:
            cond["audio_tokens"] = self._encode_audio(inputs, start, end, device).to(dtype)
            cond["speaking_scores"] = torch.from_numpy(inputs.speaking_scores[None, :, start:end]).to(
                device, dtype
            )
            cond["face_masks"] = inputs.face_masks_for(start, end, *latent_hw)[None].to(device, dtype)
        return cond

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int = 8) -> torch.Tensor:
        """``(1, 4, n, h, w)`` scaled latents -> ``(n, 3, H, W)`` float32 in [0, 1] on the CPU, chunk by chunk."""
        flat = latents[0].transpose(0, 1) / self.vae.config.scaling_factor
        chunks = []
        for i in range(0, flat.shape[0], max(1, decode_chunk_size)):
            image = self.vae.decode(flat[i : i + decode_chunk_size].to(self.vae.dtype)).sample
            chunks.append((image.float() / 2 + 0.5).clamp(0, 1).cpu())
        return torch.cat(chunks)

    @staticmethod
    def _format(frames: torch.Tensor, output_type: str):
        """``(n, 3, H, W)`` in [0, 1] -> the output type's per-video frame container."""
        if output_type == "pt":
            return frames
        array = frames.permute(0, 2, 3, 1).numpy()
        if output_type == "np":
            return array
        return [Image.fromarray((frame * 255 + 0.5).astype(np.uint8)) for frame in array]

    # ------------------------------------------------------------------ denoising
    def _denoise_window(
        self,
        latents: torch.Tensor,
        fixed_latents: torch.Tensor | None,
        timesteps: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        conditions: dict,
        guidance_scale: float,
        guidance_rescale: float,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs: list[str],
        progress_bar,
    ) -> torch.Tensor:
        """Denoise one window ``(1, 4, n, h, w)``; ``fixed_latents`` ``(1, 4, k, h, w)`` pin its first ``k``
        frames (see :mod:`covog_diffusers.pipelines.windows`)."""
        do_cfg = guidance_scale > 1.0
        k = 0 if fixed_latents is None else fixed_latents.shape[2]
        fixed_noise = latents[:, :, :k].clone()
        if do_cfg:
            conditions = {name: torch.cat([value, value]) for name, value in conditions.items()}
        for i, t in enumerate(timesteps):
            if self.interrupt:
                break
            if k:
                latents[:, :, :k] = self.scheduler.add_noise(fixed_latents, fixed_noise, t.reshape(1))
            model_input = torch.cat([latents, latents]) if do_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            noise_pred = self.denoising_unet(
                model_input, t, encoder_hidden_states=encoder_hidden_states, return_dict=False, **conditions
            )[0]
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance_scale * (cond - uncond)
                if guidance_rescale > 0:
                    noise_pred = rescale_noise_cfg(noise_pred, cond, guidance_rescale)
            latents = self.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                local = {"latents": latents, "noise_pred": noise_pred}
                outputs = callback_on_step_end(
                    self, i, t, {name: local[name] for name in callback_on_step_end_tensor_inputs}
                )
                latents = outputs.pop("latents", latents)
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
        window_frames: int = 16,
        overlap_frames: int = 6,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.5,
        guidance_rescale: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        callback_on_step_end: Callable | PipelineCallback | MultiPipelineCallbacks | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        decode_chunk_size: int = 8,
        frames_callback: Callable[[int, Any], None] | None = None,
        face_boxes=None,
        keypoint_size: tuple[int, int] | None = None,
        fps: float = 25.0,
        return_dict: bool = True,
    ) -> CovOGPipelineOutput | tuple:
        r"""Generate a talking video.

        Args:
            reference_image: PIL image, ``(H0, W0, 3)`` uint8/float array or ``(3, H0, W0)`` tensor in [0, 1].
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
            height, width: output size (multiples of the VAE factor); default: the reference image's size.
            num_frames: frames to generate (default: all pose frames).
            window_frames, overlap_frames: long-video windows; the last ``overlap_frames`` frames of a window
                are fixed as the first of the next.
            num_inference_steps, guidance_scale, guidance_rescale: DDIM steps and classifier-free guidance
                (unconditional branch: zeroed CLIP embedding and no reference attention, as dropped in training).
            generator, latents: noise source, or initial noise ``(1, 4, F, H/8, W/8)`` for the whole video.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"`` (see :class:`CovOGPipelineOutput`).
            callback_on_step_end: ``callback(pipe, step, timestep, callback_kwargs) -> dict`` after each step;
                ``step`` counts within the current window, ``pipe.current_window`` is ``(index, start, end)``.
            decode_chunk_size: frames decoded by the VAE at once.
            frames_callback: ``frames_callback(start_frame, frames)`` receives each window's new frames (in the
                ``output_type`` format, without batch axis) as soon as they are decoded; they are then not
                kept, and ``frames`` of the output is None (constant memory for any video length).
            face_boxes: ``(P, F, 4)`` xyxy face boxes (pixels of ``keypoint_size``) overriding the head boxes.
            keypoint_size: ``(H0, W0)`` pixel space of keypoints and boxes; default the reference image's size.
            fps: video frame rate (audio alignment).
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = [name for name in tensor_inputs if name not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback tensor inputs {unknown} not in {self._callback_tensor_inputs}")
        if num_inference_steps <= 0:
            raise ValueError(f"num_inference_steps must be positive, got {num_inference_steps}")
        max_window = self.denoising_unet.config.motion_max_seq_length
        if window_frames > max_window:
            raise ValueError(
                f"window_frames={window_frames} exceeds the motion module's maximum {max_window}"
            )
        self.check_components()
        inputs = prepare_inputs(
            reference_image,
            reference_poses,
            poses,
            audio=audio,
            sample_rate=sample_rate,
            speaking_scores=speaking_scores,
            speaker_audios=speaker_audios,
            face_boxes=face_boxes,
            keypoint_size=keypoint_size,
            height=height,
            width=width,
            num_frames=num_frames,
            vae_scale_factor=self.vae_scale_factor,
            max_speakers=self.denoising_unet.config.max_speakers,
            fps=fps,
            need_face_boxes=self.uses_audio,
        )
        windows = plan_windows(inputs.num_frames, window_frames, overlap_frames)
        device = self._execution_device
        dtype = self.denoising_unet.dtype
        h, w = inputs.height // self.vae_scale_factor, inputs.width // self.vae_scale_factor
        channels = self.denoising_unet.config.in_channels
        if latents is not None and tuple(latents.shape) != (1, channels, inputs.num_frames, h, w):
            raise ValueError(
                f"latents must have shape {(1, channels, inputs.num_frames, h, w)}, got {tuple(latents.shape)}"
            )
        self._interrupt = False
        do_cfg = guidance_scale > 1.0

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        outputs, previous = [], None
        with ReferenceAttentionControl(self.reference_unet, self.denoising_unet) as control:
            embeds, reference_latents, pose_embedding = self._encode_reference(inputs, device)
            control.write(
                reference_latents.to(self.reference_unet.dtype),
                embeds.to(self.reference_unet.dtype),
                pose_embedding=pose_embedding,
            )
            if do_cfg:
                control.bank.features = {
                    name: value.repeat(2, 1, 1) for name, value in control.bank.features.items()
                }
                embeds = control.drop_reference(embeds.repeat(2, 1, 1), keep=torch.tensor([False, True]))
            embeds = embeds.to(dtype)

            with self.progress_bar(total=len(windows) * len(timesteps)) as progress_bar:
                for index, (start, end) in enumerate(windows):
                    self.current_window = (index, start, end)
                    shape = (1, channels, end - start, h, w)
                    if latents is None:
                        window_latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                    else:
                        window_latents = latents[:, :, start:end].to(device, dtype).clone()
                    window_latents = window_latents * self.scheduler.init_noise_sigma
                    conditions = self._window_conditions(inputs, start, end, (h, w), device, dtype)
                    k = 0 if previous is None else overlap_frames
                    fixed = previous[:, :, previous.shape[2] - k :] if k else None
                    window_latents = self._denoise_window(
                        window_latents,
                        fixed,
                        timesteps,
                        embeds,
                        conditions,
                        guidance_scale,
                        guidance_rescale,
                        callback_on_step_end,
                        tensor_inputs,
                        progress_bar,
                    )
                    previous = window_latents
                    new = window_latents[:, :, k:]
                    if output_type == "latent":
                        chunk = new[0]
                    else:
                        chunk = self._format(self.decode_latents(new, decode_chunk_size), output_type)
                    if frames_callback is not None:
                        frames_callback(start + k, chunk)
                    else:
                        outputs.append(chunk)
                    if self.interrupt:
                        break
        self.current_window = None
        self.maybe_free_model_hooks()

        frames = None
        if outputs:
            if output_type == "latent":
                frames = torch.cat(outputs, dim=1)[None]
            elif output_type == "pt":
                frames = torch.cat(outputs)[None]
            elif output_type == "np":
                frames = np.concatenate(outputs)[None]
            else:
                frames = [[image for chunk in outputs for image in chunk]]
        if not return_dict:
            return (frames,)
        return CovOGPipelineOutput(frames=frames)

    # ------------------------------------------------------------------ MIT rows
    #: ``CovOGPipeline.inputs_from_mit_row(row, num_frames=None, start_frame=0, reference_frame=0, height=None,
    #: width=None) -> dict``: keyword arguments for ``pipe(**inputs)`` from a loaded MIT row
    #: (:func:`covog_diffusers.pipelines.mit.inputs_from_mit_row`).
    inputs_from_mit_row = staticmethod(inputs_from_mit_row)

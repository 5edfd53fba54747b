"""CovOG DenoisingNet: diffusers' :class:`~diffusers.UNetMotionModel` (SD1.5 UNet + AnimateDiff motion modules)
with the pose and Interactive Audio Driver hooks.

* **Pose:** the pose guider's features ``(B, C0, F, h, w)`` are added to the output of ``conv_in``
  (AnimateAnyone's pose guider placement).
* **IAD:** one :class:`~covog_diffusers.models.interactive_audio_driver.InteractiveAudioDriver` after every down
  block, after the mid block and after every up block (``len(down) + 1 + len(up)`` of them, module list
  ``audio_drivers`` in that order). The paper inserts the IAD "after each DenoisingNet block": placing it on the
  block outputs lets audio act at every scale (coarse blocks move the jaw/head, fine blocks the lips) while the
  blocks themselves stay bit-identical to SD1.5/AnimateDiff, so pretrained weights and the motion module load
  unchanged. After a down block the IAD output replaces both the hidden state passed on and the block's last
  skip connection (in diffusers they are the same tensor), so the up path sees the audio-driven features too.
* **Reference attention** is attached through attention processors
  (:mod:`covog_diffusers.models.reference_attention`), not here.

``use_iad=False`` is the "without IAD" ablation: no IAD modules exist and audio inputs are ignored. A fresh
IAD (zero-initialised output) gives exactly the same output as ``use_iad=False``, and a fresh motion module
(zero output projection, AnimateDiff's ``zero_initialize``) is the identity.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import register_to_config

# DiffusionPipeline.from_pretrained finds a custom component's loader by looking ModelMixin up in its module.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from diffusers.models.unets.unet_motion_model import UNetMotionModel, UNetMotionOutput
from torch import nn

from .casting import cast_to_dtype
from .interactive_audio_driver import InteractiveAudioDriver


class CovOGDenoisingNet(UNetMotionModel):
    """See the module docstring. Extra config: ``use_iad``, ``audio_cross_attention_dim``, ``iad_num_heads``,
    ``iad_gate_hidden_dim``, ``max_speakers`` (the most persons a sample may have)."""

    @register_to_config
    def __init__(
        self,
        sample_size: int | None = None,
        in_channels: int = 4,
        out_channels: int = 4,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlockMotion",
            "CrossAttnDownBlockMotion",
            "CrossAttnDownBlockMotion",
            "DownBlockMotion",
        ),
        up_block_types: tuple[str, ...] = (
            "UpBlockMotion",
            "CrossAttnUpBlockMotion",
            "CrossAttnUpBlockMotion",
            "CrossAttnUpBlockMotion",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int | tuple[int] = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 768,
        transformer_layers_per_block: int | tuple[int] | tuple[tuple] = 1,
        reverse_transformer_layers_per_block: int | tuple[int] | tuple[tuple] | None = None,
        temporal_transformer_layers_per_block: int | tuple[int] | tuple[tuple] = 1,
        reverse_temporal_transformer_layers_per_block: int | tuple[int] | tuple[tuple] | None = None,
        transformer_layers_per_mid_block: int | tuple[int] | None = None,
        temporal_transformer_layers_per_mid_block: int | tuple[int] | None = 1,
        use_linear_projection: bool = False,
        num_attention_heads: int | tuple[int, ...] = 8,
        motion_max_seq_length: int = 32,
        motion_num_attention_heads: int | tuple[int, ...] = 8,
        reverse_motion_num_attention_heads: int | tuple[int, ...] | tuple[tuple[int, ...], ...] | None = None,
        use_motion_mid_block: bool = True,
        mid_block_layers: int = 1,
        encoder_hid_dim: int | None = None,
        encoder_hid_dim_type: str | None = None,
        addition_embed_type: str | None = None,
        addition_time_embed_dim: int | None = None,
        projection_class_embeddings_input_dim: int | None = None,
        time_cond_proj_dim: int | None = None,
        # CovOG
        use_iad: bool = True,
        audio_cross_attention_dim: int = 768,
        iad_num_heads: int = 8,
        iad_gate_hidden_dim: int = 64,
        max_speakers: int = 4,
    ):
        super().__init__(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            down_block_types=down_block_types,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            downsample_padding=downsample_padding,
            mid_block_scale_factor=mid_block_scale_factor,
            act_fn=act_fn,
            norm_num_groups=norm_num_groups,
            norm_eps=norm_eps,
            cross_attention_dim=cross_attention_dim,
            transformer_layers_per_block=transformer_layers_per_block,
            reverse_transformer_layers_per_block=reverse_transformer_layers_per_block,
            temporal_transformer_layers_per_block=temporal_transformer_layers_per_block,
            reverse_temporal_transformer_layers_per_block=reverse_temporal_transformer_layers_per_block,
            transformer_layers_per_mid_block=transformer_layers_per_mid_block,
            temporal_transformer_layers_per_mid_block=temporal_transformer_layers_per_mid_block,
            use_linear_projection=use_linear_projection,
            num_attention_heads=num_attention_heads,
            motion_max_seq_length=motion_max_seq_length,
            motion_num_attention_heads=motion_num_attention_heads,
            reverse_motion_num_attention_heads=reverse_motion_num_attention_heads,
            use_motion_mid_block=use_motion_mid_block,
            mid_block_layers=mid_block_layers,
            encoder_hid_dim=encoder_hid_dim,
            encoder_hid_dim_type=encoder_hid_dim_type,
            addition_embed_type=addition_embed_type,
            addition_time_embed_dim=addition_time_embed_dim,
            projection_class_embeddings_input_dim=projection_class_embeddings_input_dim,
            time_cond_proj_dim=time_cond_proj_dim,
        )
        if addition_embed_type is not None or encoder_hid_dim_type is not None:
            raise ValueError(
                "CovOGDenoisingNet supports neither addition_embed_type nor encoder_hid_dim_type"
            )
        # AnimateDiff's ``zero_initialize``: a fresh motion module is the identity (its output projection is
        # zero), so a DenoisingNet built from scratch starts stage 2 as the stage 1 image model; pretrained
        # motion modules overwrite these weights when loaded.
        for name, module in self.named_modules():
            if name.split(".")[-2:-1] == ["motion_modules"]:
                nn.init.zeros_(module.proj_out.weight)
                nn.init.zeros_(module.proj_out.bias)
        self.audio_drivers = None
        if use_iad:
            channels = list(block_out_channels)
            block_channels = channels + [channels[-1]] + list(reversed(channels))
            self.audio_drivers = nn.ModuleList(
                InteractiveAudioDriver(
                    c,
                    audio_cross_attention_dim,
                    num_heads=iad_num_heads,
                    gate_hidden_dim=iad_gate_hidden_dim,
                    norm_num_groups=norm_num_groups,
                    norm_eps=norm_eps,
                )
                for c in block_channels
            )

    @classmethod
    def from_unet2d(cls, unet, motion_adapter=None, load_weights: bool = True, **covog_config):
        """:meth:`UNetMotionModel.from_unet2d` plus CovOG config overrides (``use_iad=...``, ...).

        The IADs are freshly initialised (identity), so the result equals the plain AnimateDiff UNet.
        """
        model = super().from_unet2d(unet, motion_adapter=motion_adapter, load_weights=load_weights)
        if covog_config:
            state = model.state_dict()
            model = cls.from_config(model.config, **covog_config)
            model.load_state_dict(state, strict=False)
            if model.dtype != unet.dtype:
                cast_to_dtype(model, unet.dtype)
        return model

    #: ``UNetMotionModel`` lacks it, so ``pipe.enable_attention_slicing()`` would skip the DenoisingNet: use
    #: ``UNet2DConditionModel``'s, which slices every ``Attention`` module found among the children (spatial and
    #: motion-module attention alike).
    set_attention_slice = UNet2DConditionModel.set_attention_slice

    def _drive(self, index, sample, audio):
        if audio is None:
            return sample
        return self.audio_drivers[index](sample, *audio)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        pose_features: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        speaking_scores: torch.Tensor | None = None,
        face_masks: torch.Tensor | None = None,
        person_mask: torch.Tensor | None = None,
        timestep_cond: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        return_dict: bool = True,
        **kwargs,
    ) -> UNetMotionOutput | tuple[torch.Tensor]:
        """
        Args:
            sample: ``(B, C, F, h, w)`` noisy latents.
            timestep: scalar or ``(B,)``.
            encoder_hidden_states: ``(B, L, D)`` (CLIP image embedding), repeated per frame here.
            pose_features: ``(B, C0, F, h, w)`` pose guider output, added after ``conv_in``.
            audio_tokens: ``(B, F, M, D_audio)``; with ``speaking_scores`` ``(B, P, F)``, ``face_masks``
                ``(B, P, F, Hm, Wm)`` and ``person_mask`` ``(B, P)`` they drive the IADs (ignored when
                ``use_iad`` is False; all three of tokens, scores and masks are needed otherwise).
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        b, _, num_frames, h, w = sample.shape
        audio = self._audio_inputs(b, num_frames, audio_tokens, speaking_scores, face_masks, person_mask)

        forward_upsample_size = any(s % 2**self.num_upsamplers != 0 for s in (h, w))
        upsample_size = None
        if attention_mask is not None:
            attention_mask = ((1 - attention_mask.to(sample.dtype)) * -10000.0).unsqueeze(1)

        # 1. time
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float32 if isinstance(timestep, float) else torch.int64
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif timesteps.ndim == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(b)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=self.dtype), timestep_cond)
        emb = emb.repeat_interleave(num_frames, dim=0)
        encoder_hidden_states = encoder_hidden_states.repeat_interleave(num_frames, dim=0)

        # 2. pre-process (+ pose)
        sample = sample.permute(0, 2, 1, 3, 4).reshape((b * num_frames, -1, h, w))
        sample = self.conv_in(sample)
        if pose_features is not None:
            if pose_features.shape[0] != b or pose_features.shape[2] != num_frames:
                raise ValueError(
                    f"pose_features {tuple(pose_features.shape)} do not match the sample (B={b}, F={num_frames})"
                )
            sample = sample + pose_features.permute(0, 2, 1, 3, 4).reshape(sample.shape).to(sample.dtype)

        # 3. down (+ IAD)
        block = 0
        down_block_res_samples = (sample,)
        for down_block in self.down_blocks:
            if getattr(down_block, "has_cross_attention", False):
                sample, res_samples = down_block(
                    hidden_states=sample,
                    temb=emb,
                    encoder_hidden_states=encoder_hidden_states,
                    attention_mask=attention_mask,
                    num_frames=num_frames,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                sample, res_samples = down_block(hidden_states=sample, temb=emb, num_frames=num_frames)
            sample = self._drive(block, sample, audio)
            block += 1
            down_block_res_samples += res_samples[:-1] + (sample,)

        # 4. mid (+ IAD)
        if self.mid_block is not None:
            mid_kwargs = {"num_frames": num_frames} if hasattr(self.mid_block, "motion_modules") else {}
            sample = self.mid_block(
                sample,
                emb,
                encoder_hidden_states=encoder_hidden_states,
                attention_mask=attention_mask,
                cross_attention_kwargs=cross_attention_kwargs,
                **mid_kwargs,
            )
        sample = self._drive(block, sample, audio)
        block += 1

        # 5. up (+ IAD)
        for i, up_block in enumerate(self.up_blocks):
            is_final_block = i == len(self.up_blocks) - 1
            res_samples = down_block_res_samples[-len(up_block.resnets) :]
            down_block_res_samples = down_block_res_samples[: -len(up_block.resnets)]
            if not is_final_block and forward_upsample_size:
                upsample_size = down_block_res_samples[-1].shape[2:]
            if getattr(up_block, "has_cross_attention", False):
                sample = up_block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res_samples,
                    encoder_hidden_states=encoder_hidden_states,
                    upsample_size=upsample_size,
                    attention_mask=attention_mask,
                    num_frames=num_frames,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                sample = up_block(
                    hidden_states=sample,
                    temb=emb,
                    res_hidden_states_tuple=res_samples,
                    upsample_size=upsample_size,
                    num_frames=num_frames,
                )
            sample = self._drive(block, sample, audio)
            block += 1

        # 6. post-process
        if self.conv_norm_out:
            sample = self.conv_act(self.conv_norm_out(sample))
        sample = self.conv_out(sample)
        sample = sample.reshape((b, num_frames) + sample.shape[1:]).permute(0, 2, 1, 3, 4)
        if not return_dict:
            return (sample,)
        return UNetMotionOutput(sample=sample)

    def _audio_inputs(self, b, f, audio_tokens, speaking_scores, face_masks, person_mask):
        """Flatten the IAD inputs to per-frame batches ``(B*F, ...)``; None when the IADs do not run."""
        if self.audio_drivers is None or audio_tokens is None:
            return None
        if speaking_scores is None or face_masks is None:
            raise ValueError("audio_tokens need speaking_scores (B, P, F) and face_masks (B, P, F, Hm, Wm)")
        p = speaking_scores.shape[1]
        if p > self.config.max_speakers:
            raise ValueError(
                f"{p} speakers given, the model supports at most max_speakers={self.config.max_speakers}"
            )
        if audio_tokens.shape[:2] != (b, f):
            raise ValueError(f"audio_tokens {tuple(audio_tokens.shape)} do not match (B={b}, F={f}, M, D)")
        if speaking_scores.shape != (b, p, f):
            raise ValueError(f"speaking_scores must be ({b}, P, {f}), got {tuple(speaking_scores.shape)}")
        if face_masks.shape[:3] != (b, p, f):
            raise ValueError(f"face_masks must be ({b}, {p}, {f}, Hm, Wm), got {tuple(face_masks.shape)}")
        tokens = audio_tokens.reshape(b * f, *audio_tokens.shape[2:]).to(self.dtype)
        scores = speaking_scores.permute(0, 2, 1).reshape(b * f, p)
        masks = face_masks.permute(0, 2, 1, 3, 4).reshape(b * f, p, *face_masks.shape[3:])
        if person_mask is not None:
            person_mask = person_mask.to(torch.bool).repeat_interleave(f, dim=0)
        return tokens, scores, masks, person_mask

"""The trained CovOG components in one ``nn.Module``, so one DDP/FSDP/DeepSpeed wrapper holds them all.

``CovOGTrainingModel.forward`` is one conditional denoising prediction, built from the same pieces the
pipeline uses (:class:`~covog_diffusers.models.reference_attention.ReferenceAttentionControl` with
``drop_reference``, :meth:`MultiHumanPoseEncoder.encode_frames`, the IAD inputs): ReferenceNet on the clean
reference latents (+ pose adaptor) -> reference bank; pose guider per frame; audio projection -> IADs;
DenoisingNet on the noisy latents. Frozen encoders (VAE, CLIP, wav2vec2) run outside, without gradients.

Stage 1 is AnimateAnyone's image stage: the motion modules are bypassed (identity), as if the DenoisingNet
were the 2D UNet they are inserted into in stage 2.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from covog_diffusers.models.reference_attention import ReferenceAttentionControl


@contextlib.contextmanager
def motion_modules_bypassed(unet):
    """Every AnimateDiff motion module of ``unet`` returns its input unchanged inside the block."""
    handles = [
        module.register_forward_hook(lambda mod, args, output: args[0])
        for name, module in unet.named_modules()
        if name.split(".")[-2:-1] == ["motion_modules"]
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class CovOGTrainingModel(nn.Module):
    """``forward(...) -> (B, C, F, h, w)`` DenoisingNet prediction (see the module docstring)."""

    def __init__(
        self,
        reference_unet,
        denoising_unet,
        pose_guider,
        pose_adaptor=None,
        audio_projection=None,
        bypass_motion_modules: bool = False,
    ):
        super().__init__()
        self.reference_unet = reference_unet
        self.denoising_unet = denoising_unet
        self.pose_guider = pose_guider
        self.pose_adaptor = pose_adaptor
        self.audio_projection = audio_projection
        self.bypass_motion_modules = bypass_motion_modules
        # Installed for the whole run (attention processors are not parameters; restored by ``release``).
        self.control = ReferenceAttentionControl(reference_unet, denoising_unet).install()

    def release(self) -> None:
        """Restore the UNets' own attention processors (before saving or handing them to a pipeline)."""
        self.control.uninstall()

    def forward(
        self,
        noisy_latents: torch.Tensor,
        timesteps: torch.Tensor,
        image_embeds: torch.Tensor,
        reference_latents: torch.Tensor,
        keep_reference: torch.Tensor,
        reference_pose_maps: torch.Tensor,
        pose_maps: torch.Tensor,
        person_mask: torch.Tensor,
        audio_features: torch.Tensor | None = None,
        speaking_scores: torch.Tensor | None = None,
        face_masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            noisy_latents: ``(B, 4, F, h, w)``; timesteps ``(B,)``.
            image_embeds: ``(B, 1, D)`` CLIP embeddings of the references; reference_latents ``(B, 4, h, w)``.
            keep_reference: ``(B,)`` bool; False = the unconditional branch (reference and CLIP dropped).
            reference_pose_maps: ``(B, P, 3, H, W)``; pose_maps ``(B, P, F, 3, H, W)``; person_mask ``(B, P)``.
            audio_features: ``(B, F, 2 * window + 1, L, D)`` wav2vec2 layers around each frame
                (:func:`~covog_diffusers.models.audio.window_audio_features`), with speaking_scores ``(B, P, F)``
                and face_masks ``(B, P, F, h, w)``; None in stage 1 (no audio, IADs idle).
        """
        unet_dtype = self.denoising_unet.dtype
        pose_embedding = None
        if self.pose_adaptor is not None:
            pose_embedding = self.pose_adaptor(reference_pose_maps, person_mask)
        self.control.write(
            reference_latents.to(self.reference_unet.dtype),
            image_embeds.to(self.reference_unet.dtype),
            pose_embedding=pose_embedding,
        )
        embeds = self.control.drop_reference(image_embeds, keep_reference).to(unet_dtype)
        conditions = {"pose_features": self.pose_guider.encode_frames(pose_maps, person_mask).to(unet_dtype)}
        if audio_features is not None and self.audio_projection is not None:
            conditions.update(
                audio_tokens=self.audio_projection(audio_features),
                speaking_scores=speaking_scores,
                face_masks=face_masks,
                person_mask=person_mask,
            )
        # The bank stays filled until the next write: gradient checkpointing re-runs the DenoisingNet's
        # attention during backward, and it must read the same reference tokens and dropout mask again.
        bypass = (
            motion_modules_bypassed(self.denoising_unet)
            if self.bypass_motion_modules
            else contextlib.nullcontext()
        )
        with bypass:
            return self.denoising_unet(
                noisy_latents.to(unet_dtype),
                timesteps,
                encoder_hidden_states=embeds,
                return_dict=False,
                **conditions,
            )[0]

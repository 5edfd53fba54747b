"""Multi-human Pose Encoder (MPE): one shared pose network applied to each person, summed.

``e_pose = sum_i F_pose(p_i)`` over the valid persons ``i`` of a frame, so the number of people is free (1..N) and
the result does not depend on their order. ``F_pose`` is AnimateAnyone's Pose Guider: a 3x3 conv to the first
channel count, then per stage a 3x3 conv and a 3x3 stride-2 conv, SiLU after each, and a zero-initialised 3x3
output conv, so a fresh encoder adds nothing to the UNet it feeds. With ``len(block_out_channels) = 4`` the output
sits at stride 8, the latent grid of the SD VAE.

The pipeline uses two instances: ``pose_guider`` (per-frame poses, added after the DenoisingNet's ``conv_in``) and
``pose_adaptor`` (the reference pose, added after the ReferenceNet's ``conv_in``). ``joint=True`` is the
AnimateAnyone ablation ("without MPE"): the persons' maps are composited into one map (pixel-wise max) and
encoded once.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class MultiHumanPoseEncoder(ModelMixin, ConfigMixin):
    """``forward(pose_maps (N, P, C, H, W) in [0, 1], person_mask (N, P) | None) -> (N, out_channels, H/s, W/s)``
    with ``s = 2 ** (len(block_out_channels) - 1)`` (:attr:`downscale_factor`)."""

    @register_to_config
    def __init__(
        self,
        conditioning_channels: int = 3,
        block_out_channels: tuple[int, ...] = (16, 32, 96, 256),
        out_channels: int = 320,
        joint: bool = False,
    ):
        super().__init__()
        channels = list(block_out_channels)
        self.conv_in = nn.Conv2d(conditioning_channels, channels[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in itertools.pairwise(channels):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(channels[-1], out_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def downscale_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def encode_single(self, maps: torch.Tensor) -> torch.Tensor:
        """``F_pose``: ``(N, C, H, W) -> (N, out_channels, H/s, W/s)`` for single-person (or composited) maps."""
        x = F.silu(self.conv_in(maps.to(self.dtype)))
        for conv in self.blocks:
            x = F.silu(conv(x))
        return self.conv_out(x)

    def forward(self, pose_maps: torch.Tensor, person_mask: torch.Tensor | None = None) -> torch.Tensor:
        if pose_maps.ndim != 5:
            raise ValueError(f"pose_maps must be (N, P, C, H, W), got shape {tuple(pose_maps.shape)}")
        n, p, c, h, w = pose_maps.shape
        if c != self.config.conditioning_channels:
            raise ValueError(f"pose_maps have {c} channels, expected {self.config.conditioning_channels}")
        if h % self.downscale_factor or w % self.downscale_factor:
            raise ValueError(f"pose map size {h}x{w} is not divisible by {self.downscale_factor}")
        if person_mask is None:
            person_mask = torch.ones(n, p, dtype=torch.bool, device=pose_maps.device)
        person_mask = person_mask.to(device=pose_maps.device, dtype=torch.bool)
        if person_mask.shape != (n, p):
            raise ValueError(f"person_mask must be ({n}, {p}), got {tuple(person_mask.shape)}")

        if self.config.joint:
            # AnimateAnyone's single pose guider: one map with everybody drawn in it.
            masked = pose_maps * person_mask[:, :, None, None, None].to(pose_maps.dtype)
            return self.encode_single(masked.amax(dim=1))

        s = self.downscale_factor
        out = torch.zeros(
            n, self.config.out_channels, h // s, w // s, device=pose_maps.device, dtype=self.dtype
        )
        flat_mask = person_mask.reshape(-1)
        if flat_mask.any():
            # Encode only the valid persons, then scatter-add each one into its sample.
            features = self.encode_single(pose_maps.reshape(n * p, c, h, w)[flat_mask])
            sample_index = torch.arange(n, device=pose_maps.device).repeat_interleave(p)[flat_mask]
            out = out.index_add(0, sample_index, features.to(out.dtype))  # autocast may give bf16
        return out

    def encode_frames(self, pose_maps: torch.Tensor, person_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame pose features for a batch of videos: ``(B, P, F, C, H, W)`` maps (``person_mask``
        ``(B, P)``) -> ``(B, out_channels, F, H/s, W/s)``, the layout the DenoisingNet adds after ``conv_in``."""
        if pose_maps.ndim != 6:
            raise ValueError(f"pose_maps must be (B, P, F, C, H, W), got shape {tuple(pose_maps.shape)}")
        b, p, f = pose_maps.shape[:3]
        frames = pose_maps.transpose(1, 2).reshape(b * f, p, *pose_maps.shape[3:])
        mask = None if person_mask is None else person_mask.to(torch.bool).repeat_interleave(f, dim=0)
        features = self(frames, mask)  # (B * F, C0, h, w)
        return features.reshape(b, f, *features.shape[1:]).transpose(1, 2)

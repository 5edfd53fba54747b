"""Interactive Audio Driver (IAD): per-speaker gated, face-masked cross-attention to the audio tokens.

For speaker ``i`` with speaking score ``a^i`` (per frame, in [-1, 1]):

    e_audio^i = e_audio * sigmoid(MLP(a^i))                       (channel-wise gate of the audio tokens)
    h_{k+1}   = h_k + sum_i mask_i * F_audio(h_k, e_audio^i)      (cross-attention, queries from h_k)

``mask_i`` is speaker ``i``'s face mask resized to the hidden state's grid (area interpolation, so any aspect
ratio works and the mask keeps its soft coverage at the edges). One set of weights serves every speaker; padded
persons (``person_mask`` False) contribute nothing. The output projection is zero-initialised, so a fresh IAD is
the identity and can be inserted into a pretrained UNet without changing it. Where the IADs sit in the
DenoisingNet is documented in :mod:`covog_diffusers.models.denoising_net`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize_masks(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(N, P, Hm, Wm) -> (N, P, height, width)`` by area interpolation (block-average down, repeat up)."""
    if tuple(masks.shape[-2:]) == (height, width):
        return masks
    return F.interpolate(masks, size=(height, width), mode="area")


class InteractiveAudioDriver(nn.Module):
    """One IAD for hidden states with ``channels`` channels; audio tokens of width ``audio_dim``."""

    def __init__(
        self,
        channels: int,
        audio_dim: int,
        num_heads: int = 8,
        gate_hidden_dim: int = 64,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"IAD channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=norm_eps, affine=True)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(audio_dim, channels, bias=False)
        self.to_v = nn.Linear(audio_dim, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.to_out.weight)
        nn.init.zeros_(self.to_out.bias)
        # sigmoid(MLP(score)): one gate value per audio channel.
        self.gate = nn.Sequential(
            nn.Linear(1, gate_hidden_dim), nn.SiLU(), nn.Linear(gate_hidden_dim, audio_dim)
        )

    def speaker_gates(self, speaking_scores: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(N, P) -> (N, P, audio_dim)`` gates in (0, 1), computed in ``dtype`` (default: the scores').

        The compute dtype is never read from the weights: under ``enable_layerwise_casting`` they are stored in
        float8 and only upcast inside each layer's forward.
        """
        scores = speaking_scores[..., None]
        return torch.sigmoid(self.gate(scores if dtype is None else scores.to(dtype)))

    def forward(
        self,
        hidden_states: torch.Tensor,
        audio_tokens: torch.Tensor,
        speaking_scores: torch.Tensor,
        face_masks: torch.Tensor,
        person_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: ``(N, C, h, w)`` (N = batch x frames).
            audio_tokens: ``(N, M, audio_dim)``.
            speaking_scores: ``(N, P)``.
            face_masks: ``(N, P, Hm, Wm)`` in [0, 1], any size (resized to ``h x w`` here).
            person_mask: ``(N, P)`` bool, False for padded persons.
        Returns:
            ``(N, C, h, w)``: ``hidden_states`` plus the masked sum of the per-speaker attention outputs.
        """
        n, c, h, w = hidden_states.shape
        p = speaking_scores.shape[1]
        dtype = hidden_states.dtype
        weights = resize_masks(face_masks.to(dtype), h, w)  # (N, P, h, w)
        if person_mask is not None:
            weights = weights * person_mask.to(device=weights.device, dtype=dtype)[:, :, None, None]

        heads = self.num_heads
        x = self.norm(hidden_states).reshape(n, c, h * w).transpose(1, 2)
        query = self.to_q(x).reshape(n, h * w, heads, c // heads).transpose(1, 2)
        gates = self.speaker_gates(speaking_scores, dtype)  # (N, P, D)
        out = hidden_states
        for i in range(p):  # P <= max_speakers; padded persons have zero weights
            tokens = audio_tokens * gates[:, i, None, :].to(audio_tokens.dtype)
            key = self.to_k(tokens).reshape(n, -1, heads, c // heads).transpose(1, 2)
            value = self.to_v(tokens).reshape(n, -1, heads, c // heads).transpose(1, 2)
            attended = F.scaled_dot_product_attention(query, key, value)
            attended = self.to_out(attended.transpose(1, 2).reshape(n, h * w, c))
            out = out + attended.transpose(1, 2).reshape(n, c, h, w) * weights[:, i, None]
        return out

"""Audio features: wav2vec2 hidden states per video frame, then a windowed projection to audio tokens.

``wav2vec2_frame_features`` runs a ``transformers`` :class:`~transformers.Wav2Vec2Model` on a mono waveform and
returns every encoder layer's hidden states (the layers after the CNN feature projection, 12 for
wav2vec2-base-960h), linearly interpolated from the model's 50 Hz to the video's frame rate: ``(F, L, D)``.
:class:`AudioProjection` stacks a +-``window`` frame neighbourhood around each frame (edge frames repeat) and
projects it to ``num_tokens`` tokens per frame (Hallo2's audio projection: ``(F, 5, 12, 768) -> (F, 32, 768)``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin, get_parameter_dtype
from torch import nn

from mit_dataset.vad import resample_audio

#: wav2vec2 checkpoints are trained on 16 kHz audio.
WAV2VEC2_SAMPLE_RATE = 16_000


@torch.no_grad()
def wav2vec2_frame_features(
    model,
    waveform: np.ndarray | torch.Tensor,
    sample_rate: int,
    num_frames: int,
    fps: float = 25.0,
    normalize: bool = True,
) -> torch.Tensor:
    """``(num_frames, L, D)`` wav2vec2 encoder hidden states aligned to video frames.

    ``waveform`` is mono ``(S,)``; it is resampled to 16 kHz, normalised to zero mean / unit variance (what
    ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does for wav2vec2-base-960h), padded with silence to
    ``num_frames / fps`` seconds when slightly short, and encoded. All ``L`` encoder layers
    (``hidden_states[1:]``) are interpolated linearly in time to ``num_frames``.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if isinstance(waveform, torch.Tensor):
        waveform = waveform.detach().float().cpu().numpy()
    audio = resample_audio(np.asarray(waveform, dtype=np.float32), sample_rate, WAV2VEC2_SAMPLE_RATE)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"waveform must be a non-empty mono (S,) array, got shape {audio.shape}")
    needed = round(num_frames / fps * WAV2VEC2_SAMPLE_RATE)
    if audio.shape[0] < needed:
        audio = np.pad(audio, (0, needed - audio.shape[0]))
    # The model needs at least one CNN receptive field (400 samples).
    if audio.shape[0] < 400:
        audio = np.pad(audio, (0, 400 - audio.shape[0]))
    if normalize:
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    device = next(model.parameters()).device
    dtype = get_parameter_dtype(model)  # the compute dtype, also under layerwise casting (float8 storage)
    inputs = torch.from_numpy(audio)[None].to(device=device, dtype=dtype)
    hidden = model(inputs, output_hidden_states=True).hidden_states[1:]
    hidden = torch.stack(hidden, dim=1)[0]  # (L, T, D)
    # Interpolate in time: (L, D, T) -> (L, D, F).
    seconds = audio.shape[0] / WAV2VEC2_SAMPLE_RATE
    total_frames = max(num_frames, round(seconds * fps))
    frames = F.interpolate(
        hidden.transpose(1, 2).float(), size=total_frames, mode="linear", align_corners=False
    )
    return frames[:, :, :num_frames].permute(2, 0, 1).contiguous()  # (F, L, D)


class AudioProjection(ModelMixin, ConfigMixin):
    """``(B, F, L, D) -> (B, F, num_tokens, cross_attention_dim)`` over a +-``window`` frame neighbourhood."""

    @register_to_config
    def __init__(
        self,
        num_layers: int = 12,
        feature_dim: int = 768,
        window: int = 2,
        intermediate_dim: int = 512,
        num_tokens: int = 32,
        cross_attention_dim: int = 768,
    ):
        super().__init__()
        in_dim = (2 * window + 1) * num_layers * feature_dim
        self.proj = nn.Sequential(
            nn.Linear(in_dim, intermediate_dim),
            nn.SiLU(),
            nn.Linear(intermediate_dim, intermediate_dim),
            nn.SiLU(),
            nn.Linear(intermediate_dim, num_tokens * cross_attention_dim),
        )
        self.norm = nn.LayerNorm(cross_attention_dim)

    @staticmethod
    def stack_window(features: torch.Tensor, window: int) -> torch.Tensor:
        """``(B, F, ...) -> (B, F, 2 * window + 1, ...)``: each frame with its neighbours (edges repeat)."""
        f = features.shape[1]
        offsets = torch.arange(-window, window + 1, device=features.device)
        index = (torch.arange(f, device=features.device)[:, None] + offsets[None]).clamp(0, f - 1)
        return features[:, index]

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if audio_features.ndim != 4 or tuple(audio_features.shape[2:]) != (cfg.num_layers, cfg.feature_dim):
            raise ValueError(
                f"audio_features must be (B, F, {cfg.num_layers}, {cfg.feature_dim}), "
                f"got {tuple(audio_features.shape)}"
            )
        b, f = audio_features.shape[:2]
        stacked = self.stack_window(audio_features.to(self.dtype), cfg.window).reshape(b, f, -1)
        tokens = self.proj(stacked).reshape(b, f, cfg.num_tokens, cfg.cross_attention_dim)
        return self.norm(tokens)

"""Audio features: wav2vec2 hidden states per video frame, then a windowed projection to audio tokens.

``wav2vec2_frame_features`` runs a ``transformers`` :class:`~transformers.Wav2Vec2Model` on a mono waveform and
returns every encoder layer's hidden states (the layers after the CNN feature projection, 12 for
wav2vec2-base-960h), linearly interpolated from the model's 50 Hz to the video's frame rate: ``(F, L, D)``.

:func:`window_audio_features` is the one definition of a frame window's audio input, shared by
:class:`~covog_diffusers.pipelines.CovOGPipeline` and ``training``: wav2vec2 hears the window plus
:data:`AUDIO_CONTEXT_FRAMES` (1 s) and the projection's +-``window`` frames on each side, silence (zeros) where
the clip or the video has no audio, and each frame gets its +-``window`` frame neighbourhood at the video's
frame rate, ``(F, 2 * window + 1, L, D)``. :class:`AudioProjection` maps a neighbourhood to ``num_tokens``
tokens (Hallo2's audio projection: ``(F, 5, 12, 768) -> (F, 32, 768)``). A model is thus trained on exactly the
features it is run with, whatever the window's position in the clip and the training view's ``stride``.
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


#: Frames of audio context wav2vec2 hears on each side of a frame window (1 s at 25 fps), besides the
#: projection's +-``window`` frames.
AUDIO_CONTEXT_FRAMES = 25


def audio_context_frames(window: int) -> int:
    """Frames of audio a caller passes on each side of a frame window to :func:`window_audio_features`:
    :data:`AUDIO_CONTEXT_FRAMES` + the projection's ``window`` (``AudioProjection.config.window``)."""
    return AUDIO_CONTEXT_FRAMES + int(window)


@torch.no_grad()
def window_audio_features(
    audio_encoder,
    samples: np.ndarray | torch.Tensor,
    sample_rate: int,
    num_frames: int,
    fps: float = 25.0,
    stride: int = 1,
    window: int = 2,
) -> torch.Tensor:
    """``(num_frames, 2 * window + 1, L, D)`` wav2vec2 features of frames ``i0 + stride * k`` (``k < num_frames``)
    with their +-``window`` neighbours ``i - window .. i + window`` at the video's frame rate.

    ``samples`` ``(S,)`` is the mono audio of frames ``[i0 - C, i1 + 1 + C)``, ``i1 = i0 + stride * (num_frames
    - 1)``, ``C = audio_context_frames(window)``, frame ``i`` starting at sample ``round(i / fps * sample_rate)``
    (:func:`mit_dataset.timeseries.frame_to_sample`) and zeros where there is no audio (before the clip, after
    its end). wav2vec2 encodes the whole span (:func:`wav2vec2_frame_features`), so a window's features have
    the same context wherever it lies. Raises ``ValueError`` when ``samples`` does not cover that span (to
    within one sample of rounding).
    """
    if num_frames <= 0 or stride <= 0 or window < 0:
        raise ValueError(
            f"num_frames and stride must be positive and window >= 0, got {num_frames}, {stride}, {window}"
        )
    context = audio_context_frames(window)
    span = (num_frames - 1) * stride + 1 + 2 * context
    expected = span / fps * sample_rate
    if abs(len(samples) - expected) > 1:
        raise ValueError(
            f"audio with context has {len(samples)} samples, expected {expected:.0f} at {sample_rate} Hz: "
            f"{span} frames at {fps:g} fps, the {span - 2 * context} frames of the window and {context} of "
            f"context on each side (e.g. MITVideoDataset(audio_context_frames={context}))"
        )
    features = wav2vec2_frame_features(audio_encoder, samples, sample_rate, span, fps=fps)
    centres = context + stride * torch.arange(num_frames, device=features.device)
    offsets = torch.arange(-window, window + 1, device=features.device)
    return features[centres[:, None] + offsets[None]]


class AudioProjection(ModelMixin, ConfigMixin):
    """``(B, F, 2 * window + 1, L, D) -> (B, F, num_tokens, cross_attention_dim)``: each frame's wav2vec2
    neighbourhood (:func:`window_audio_features`) to its audio tokens."""

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

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        expected = (2 * cfg.window + 1, cfg.num_layers, cfg.feature_dim)
        if audio_features.ndim != 5 or tuple(audio_features.shape[2:]) != expected:
            raise ValueError(
                f"audio_features must be (B, F, {', '.join(map(str, expected))}) (window_audio_features), "
                f"got {tuple(audio_features.shape)}"
            )
        b, f = audio_features.shape[:2]
        tokens = self.proj(audio_features.to(self.dtype).reshape(b, f, -1))
        return self.norm(tokens.reshape(b, f, cfg.num_tokens, cfg.cross_attention_dim))

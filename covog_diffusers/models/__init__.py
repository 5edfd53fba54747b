"""CovOG components as diffusers models."""

from .audio import AudioProjection, wav2vec2_frame_features, window_audio_features
from .denoising_net import CovOGDenoisingNet
from .interactive_audio_driver import InteractiveAudioDriver
from .pose_encoder import MultiHumanPoseEncoder
from .reference_attention import ReferenceAttentionControl, ReferenceBank

__all__ = [
    "AudioProjection",
    "CovOGDenoisingNet",
    "InteractiveAudioDriver",
    "MultiHumanPoseEncoder",
    "ReferenceAttentionControl",
    "ReferenceBank",
    "wav2vec2_frame_features",
    "window_audio_features",
]

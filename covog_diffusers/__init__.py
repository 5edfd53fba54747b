"""CovOG (multi-human talking video generation) as diffusers components and a ``CovOGPipeline``."""

from .models import (
    AudioProjection,
    CovOGDenoisingNet,
    InteractiveAudioDriver,
    MultiHumanPoseEncoder,
    ReferenceAttentionControl,
    ReferenceBank,
    wav2vec2_frame_features,
)

__all__ = [
    "AudioProjection",
    "CovOGDenoisingNet",
    "InteractiveAudioDriver",
    "MultiHumanPoseEncoder",
    "ReferenceAttentionControl",
    "ReferenceBank",
    "wav2vec2_frame_features",
]

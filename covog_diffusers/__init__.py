"""CovOG (multi-human talking video generation) as diffusers components and a ``CovOGPipeline``."""

from .models import (
    AudioProjection,
    CovOGDenoisingNet,
    InteractiveAudioDriver,
    MultiHumanPoseEncoder,
    ReferenceAttentionControl,
    ReferenceBank,
    wav2vec2_frame_features,
    window_audio_features,
)
from .pipelines import (
    SCHEDULER_CONFIG,
    CovOGCFGCutoffCallback,
    CovOGPipeline,
    CovOGPipelineOutput,
    create_scheduler,
    plan_windows,
)

__all__ = [
    "SCHEDULER_CONFIG",
    "AudioProjection",
    "CovOGCFGCutoffCallback",
    "CovOGDenoisingNet",
    "CovOGPipeline",
    "CovOGPipelineOutput",
    "InteractiveAudioDriver",
    "MultiHumanPoseEncoder",
    "ReferenceAttentionControl",
    "ReferenceBank",
    "create_scheduler",
    "plan_windows",
    "wav2vec2_frame_features",
    "window_audio_features",
]

"""The CovOG pipeline."""

from .batch import VideoBatch
from .callbacks import CovOGCFGCutoffCallback
from .inputs import CovOGInputs, prepare_inputs
from .pipeline_covog import SCHEDULER_CONFIG, CovOGPipeline, create_scheduler
from .pipeline_output import CovOGPipelineOutput
from .windows import plan_windows

__all__ = [
    "SCHEDULER_CONFIG",
    "CovOGCFGCutoffCallback",
    "CovOGInputs",
    "CovOGPipeline",
    "CovOGPipelineOutput",
    "VideoBatch",
    "create_scheduler",
    "plan_windows",
    "prepare_inputs",
]

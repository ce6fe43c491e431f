"""Real-world degradations: Real-ESRGAN's second-order blur/resize/noise/JPEG model, on the
training device, with per-sample parameters that are a function of the run's seed, the epoch
and the sample's position (so exact resume and DDP hold). See ``docs/degradations.md``."""

from srlab.data.degradations.config import (
    KERNEL_TYPES,
    RESIZE_MODES,
    DegradationConfig,
    FinalConfig,
    SharpenConfig,
    StageConfig,
    degradation_config,
)
from srlab.data.degradations.dataset import WithDegradationParams
from srlab.data.degradations.params import PARAM_NAMES, draw_params, sample_seed, stack_params
from srlab.data.degradations.pipeline import RealESRGANDegradation

__all__ = [
    "KERNEL_TYPES",
    "PARAM_NAMES",
    "RESIZE_MODES",
    "DegradationConfig",
    "FinalConfig",
    "RealESRGANDegradation",
    "SharpenConfig",
    "StageConfig",
    "WithDegradationParams",
    "degradation_config",
    "draw_params",
    "sample_seed",
    "stack_params",
]

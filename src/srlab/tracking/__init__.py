"""Experiment tracking: W&B set-up with an offline fallback, resume ids, image logging."""

from srlab.tracking.callbacks import RunIdCallback
from srlab.tracking.images import log_images
from srlab.tracking.wandb import (
    finish_wandb,
    has_api_key,
    offline_run_dir,
    resolve_mode,
    run_id_from_checkpoint,
    wandb_logger,
)

__all__ = [
    "RunIdCallback",
    "finish_wandb",
    "has_api_key",
    "log_images",
    "offline_run_dir",
    "resolve_mode",
    "run_id_from_checkpoint",
    "wandb_logger",
]

"""Experiment tracking: W&B set-up with an offline fallback, resume ids, image logging, run
identity (group, name, overrides, git state, swept keys), W&B dashboards (best-value summaries,
per-image tables, input artifacts) and the run's local records."""

from srlab.tracking.callbacks import RunIdCallback
from srlab.tracking.dashboard import SRLabWandbLogger
from srlab.tracking.image_table import ImageResults
from srlab.tracking.images import log_images
from srlab.tracking.run_info import (
    git_state,
    job_overrides,
    run_group,
    run_info,
    run_name,
    sweep_overrides,
)
from srlab.tracking.run_records import RunRecords
from srlab.tracking.wandb import (
    finish_wandb,
    has_api_key,
    offline_run_dir,
    resolve_mode,
    run_id_from_checkpoint,
    wandb_logger,
)

__all__ = [
    "ImageResults",
    "RunIdCallback",
    "RunRecords",
    "SRLabWandbLogger",
    "finish_wandb",
    "git_state",
    "has_api_key",
    "job_overrides",
    "log_images",
    "offline_run_dir",
    "resolve_mode",
    "run_group",
    "run_id_from_checkpoint",
    "run_info",
    "run_name",
    "sweep_overrides",
    "wandb_logger",
]

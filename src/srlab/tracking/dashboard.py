"""What W&B dashboards compare runs by: best-value summaries on the step axis, the swept keys
of a multirun as top-level config keys, and the data and weights a run started from.

:class:`SRLabWandbLogger` is Lightning's ``WandbLogger`` with three additions:

- every metric is declared (``define_metric``) the first time it is logged, with
  ``trainer/global_step`` as its step metric; PSNR/SSIM of validation get the summary
  ``max,last`` and losses ``min``, so the runs table of a sweep ranks runs by their best
  value, as ``src/compare.py`` does, and ``best_step/<key>`` in the summary says when each
  validation PSNR/SSIM was best;
- the resolved config it logs gains ``sweep/<key>: <value>`` for the overrides a multirun
  varies (:func:`srlab.tracking.run_info.sweep_overrides`), which W&B's grouping and
  parallel-coordinates panels read as plain columns;
- :meth:`SRLabWandbLogger.use_inputs` links the run to dataset and weights artifacts
  (references to the files, not copies). W&B refuses ``use_artifact`` in offline mode, so an
  offline run keeps the same references in its config under ``inputs`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from srlab.tracking.records import higher_is_better
from srlab.tracking.run_info import sweep_overrides

log = logging.getLogger(__name__)

STEP_METRIC = "trainer/global_step"  # Lightning's WandbLogger adds it to every log call
BEST_STEP_PREFIX = "best_step/"  # summary keys: the step of each validation metric's best
SWEEP_PREFIX = "sweep/"  # config keys: the overrides a multirun varies
INPUTS_KEY = "inputs"  # config key of an offline run's input references


def summary_ops(key: str) -> str | None:
    """The W&B summary of metric ``key``: ``max,last`` for validation PSNR/SSIM (their best
    and where they ended), ``min`` for losses, None (W&B's default, the last value) else."""
    name = key.rsplit("/", 1)[-1]
    if key.startswith("val/") and higher_is_better(key):
        return "max,last"
    if "loss" in name:
        return "min"
    return None


def tracks_best_step(key: str) -> bool:
    """Whether ``key`` gets a ``best_step/<key>`` summary: validation PSNR/SSIM, not the
    bicubic baseline (constant)."""
    return summary_ops(key) == "max,last" and not key.endswith("_bicubic")


class SRLabWandbLogger(WandbLogger):
    """``WandbLogger`` with best-value summaries, sweep keys and input artifacts (see the
    module docstring); built by :func:`srlab.tracking.wandb_logger`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._defined: set[str] = set()
        self._best: dict[str, tuple[float, int | None]] = {}

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        """Log ``params`` (the resolved config) plus ``sweep/<key>`` for each swept override."""
        params = dict(params) if isinstance(params, Mapping) else vars(params)
        params.update({SWEEP_PREFIX + key: value for key, value in sweep_overrides().items()})
        super().log_hyperparams(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Declare new metrics (step axis, summary), log, then update the best steps.

        A ``trainer/global_step`` among ``metrics`` (the SR tasks log one with validation
        metrics) is the step they are logged at, instead of Lightning's ``step``.
        """
        run = self.experiment
        metrics = dict(metrics)
        if STEP_METRIC in metrics:
            step = int(metrics.pop(STEP_METRIC))
        for key in metrics:
            # Lightning's glob "*" already puts every other metric on the step axis.
            if key not in self._defined and summary_ops(key):
                self._defined.add(key)
                run.define_metric(key, step_metric=STEP_METRIC, summary=summary_ops(key))
        super().log_metrics(metrics, step)
        for key, value in metrics.items():
            if not tracks_best_step(key):
                continue
            value = float(value)
            best = self._best.get(key) or _resumed_best(run, key)
            if best is None or value > best[0]:
                self._best[key] = (value, step)
                run.summary[BEST_STEP_PREFIX + key] = step

    @rank_zero_only
    def use_inputs(self, datasets: Mapping[str, str | Path], weights: Sequence[str | Path]) -> None:
        """Link the run to what it read: each dataset folder (``{name: folder}``) as a
        ``dataset`` artifact and each weights file (pretrained weights, the checkpoint it
        resumed) as a ``model`` artifact, both by reference (no upload, no hashing of the
        images). Online only: offline, the references go to the config key ``inputs``."""
        references = {
            "datasets": {name: str(Path(path).resolve()) for name, path in datasets.items()},
            "weights": [str(w) if "://" in str(w) else str(Path(w).resolve()) for w in weights],
        }
        run = self.experiment
        if _is_offline(run):
            run.config.update({INPUTS_KEY: references}, allow_val_change=True)
            return
        import wandb

        for name, path in references["datasets"].items():
            artifact = wandb.Artifact(_artifact_name(name), type="dataset", metadata={"path": path})
            # checksum=False: W&B would otherwise read every image (GBs for DIV2K) at start.
            artifact.add_reference(Path(path).as_uri(), checksum=False)
            run.use_artifact(artifact)
        for path in references["weights"]:
            name = Path(path.split("://", 1)[-1]).name
            artifact = wandb.Artifact(_artifact_name(f"weights-{name}"), type="model")
            artifact.add_reference(path if "://" in path else Path(path).as_uri())
            run.use_artifact(artifact)


def _resumed_best(run: Any, key: str) -> tuple[float, int] | None:
    """The best value and step of ``key`` that a resumed run's summary already holds (W&B
    restores it from the server), so a resume does not forget an earlier best."""
    earlier, step = run.summary.get(key), run.summary.get(BEST_STEP_PREFIX + key)
    if step is None or not hasattr(earlier, "get") or earlier.get("max") is None:
        return None
    return float(earlier["max"]), int(step)


def _is_offline(run: Any) -> bool:
    return bool(getattr(run, "offline", False)) or getattr(run.settings, "mode", "") == "offline"


def _artifact_name(text: str) -> str:
    # W&B artifact names allow letters, digits, dashes, underscores and dots.
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def use_inputs(loggers: Iterable[Logger], datamodule: Any, weights: Sequence[str | Path]) -> None:
    """Link the W&B run of ``loggers`` (if any) to the HR folders of ``datamodule``'s
    training, validation and test sets (``srlab.data.SRDataModule``) and to ``weights``."""
    runs = [logger for logger in loggers if isinstance(logger, SRLabWandbLogger)]
    if not runs:
        return
    root = Path(datamodule.root)
    roles = {"train": datamodule.train_sets, "val": datamodule.val_sets}
    roles["test"] = datamodule.test_sets
    datasets: dict[str, Path] = {}
    for role, image_sets in roles.items():
        for image_set in image_sets:
            path = image_set.hr_path(root)
            name = image_set.name
            if datasets.get(name, path) != path:  # one name, two folders (training vs eval)
                name = f"{name}-{role}"
            datasets[name] = path
    for logger in runs:
        logger.use_inputs(datasets, weights)

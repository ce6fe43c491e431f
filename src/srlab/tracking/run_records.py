"""A callback that keeps a run's own records in its run dir, whatever logger it uses."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L

from srlab.tracking.records import (
    append_history,
    is_run_dir,
    read_history,
    read_summary,
    summarize,
    write_history,
    write_summary,
)
from srlab.tracking.run_info import run_info

BASELINE_SUFFIX = "_bicubic"  # the bicubic baseline: logged at the first validation only


class RunRecords(L.Callback):
    """Writes ``metrics.jsonl`` (every validation's metrics) and ``run.json`` (the summary).

    These are what ``src/compare.py`` reads (format: :mod:`srlab.tracking.records`), so runs can be
    compared with any logger, W&B or none. Only rank 0 writes; every rank holds the same
    values, as the evaluation metrics are reduced over ranks before they are logged.

    Each validation appends the ``val/...`` values of ``trainer.callback_metrics``, except
    the bicubic baseline: Lightning keeps a key there until it is logged again, and the
    baseline is logged once, so it goes to ``run.json`` (``bicubic``) instead. A re-run in the
    same dir (a re-queued job) appends to the history and adds to the wall time.

    The history is that of the weights the run ends with: a run resumed from the checkpoint
    of step ``s`` drops the rows after ``s`` that the interrupted run wrote after saving it
    (those steps are trained again), and a validation of a step that already has a row
    replaces it. So every step has at most one row, in order.

    Args:
        dirpath: the run dir.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self._summary: dict[str, Any] | None = None
        self._history: list[dict[str, Any]] = []
        self._started = 0.0
        self._earlier_wall_time = 0.0
        self._resumed_step = 0  # the step of the checkpoint this fit resumed from

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Note the step a resumed run starts from (before :meth:`on_fit_start`)."""
        self._resumed_step = int(checkpoint.get("global_step") or 0)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write ``run.json`` with status ``running``: who the run is, before any step."""
        if not trainer.is_global_zero:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        history = read_history(self.dirpath)
        # Rows after the resumed step belong to the interrupted part, which is trained again.
        self._history = [row for row in history if row.get("step", 0) <= self._resumed_step]
        if len(self._history) != len(history):
            write_history(self.dirpath, self._history)
        earlier = read_summary(self.dirpath) if is_run_dir(self.dirpath) else {}
        self._earlier_wall_time = float(earlier.get("wall_time_s") or 0.0)
        net = getattr(pl_module, "net", pl_module)  # the SR network, without a GAN's critic
        self._summary = {
            "status": "running",
            **run_info(),
            "params": sum(p.numel() for p in net.parameters()),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "bicubic": earlier.get("bicubic", {}),
        }
        self._started = time.monotonic()
        self._write(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Append this validation's metrics to ``metrics.jsonl`` and refresh ``run.json``."""
        if self._summary is None or trainer.sanity_checking:
            return
        values = _scalars(trainer.callback_metrics, "val/")
        metrics = {k: v for k, v in values.items() if not k.endswith(BASELINE_SUFFIX)}
        self._summary["bicubic"].update(
            {k: v for k, v in values.items() if k.endswith(BASELINE_SUFFIX)}
        )
        row = {"step": trainer.global_step, "wall_time_s": round(self._wall_time(), 3), **metrics}
        if self._history and self._history[-1].get("step", 0) >= row["step"]:
            # This step validated before (a resume from a checkpoint saved before its
            # validation): the new row replaces the old one.
            self._history = [r for r in self._history if r.get("step", 0) < row["step"]]
            self._history.append(row)
            write_history(self.dirpath, self._history)
        else:
            self._history.append(row)
            append_history(self.dirpath, row)
        self._write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Mark the run finished, with its final step count and wall time."""
        if self._summary is not None:
            self._summary["status"] = "finished"
            self._write(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Add the test metrics (of the best checkpoint, after fit) to ``run.json``."""
        if self._summary is not None:
            self._summary["test"] = _scalars(trainer.callback_metrics, "test/")
            write_summary(self.dirpath, self._summary)  # steps and wall time are training's

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Mark the run failed, naming the exception, so compare shows why it stopped."""
        if self._summary is not None:
            self._summary["status"] = "failed"
            self._summary["error"] = f"{type(exception).__name__}: {exception}"
            self._write(trainer)

    def _wall_time(self) -> float:
        return self._earlier_wall_time + time.monotonic() - self._started

    def _write(self, trainer: L.Trainer) -> None:
        self._summary["steps"] = trainer.global_step
        self._summary["wall_time_s"] = round(self._wall_time(), 3)
        self._summary["metrics"] = summarize(self._history)
        write_summary(self.dirpath, self._summary)


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if k.startswith(prefix)}

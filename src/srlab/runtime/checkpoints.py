"""Finding the checkpoint to resume from (``ckpt_path=last``) and pre-emption signals."""

from __future__ import annotations

import glob
import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from srlab.errors import ConfigError
from srlab.files import atomic_write, remove_dead_partials
from srlab.weights import read_checkpoint

log = logging.getLogger(__name__)


def checkpoint_step(path: Path) -> int | None:
    """The global step stored in a checkpoint, or None if the file does not load."""
    try:
        # mmap: only the few bytes of the step are read, not the weights.
        return int(read_checkpoint(path, mmap=True)["global_step"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is skipped, and said so
        log.warning("skipping checkpoint %s: it does not load (%s)", path, error)
        return None


def newest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in ``folder`` with the highest step that loads (newest file on ties)."""
    best, best_key = None, None
    for path in folder.glob("*.ckpt"):
        step = checkpoint_step(path)
        if step is not None and (best_key is None or (step, path.stat().st_mtime) > best_key):
            best, best_key = path, (step, path.stat().st_mtime)
    return best


def resolve_ckpt_path(ckpt_path: str | None, output_dir: Path, task_runs: Path) -> str | None:
    """The checkpoint file that ``ckpt_path`` names.

    ``last`` means the newest good checkpoint of this run's output dir (a re-run with
    ``hydra.run.dir=<run>``, as a re-queued cluster job does), else of the most recent earlier
    run of the same task under ``task_runs`` (``outputs/<task_name>/runs``).

    Raises:
        ConfigError: the file does not exist, or ``last`` finds no loadable checkpoint.
    """
    if not ckpt_path:
        return None
    if ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise ConfigError(
                f"ckpt_path={ckpt_path} does not exist: give a .ckpt file, or ckpt_path=last"
            )
        return str(ckpt_path)
    runs = sorted((p for p in task_runs.glob("*") if p.is_dir()), reverse=True)
    for run in [output_dir, *(r for r in runs if r.resolve() != output_dir.resolve())]:
        found = newest_checkpoint(run / "checkpoints")
        if found is not None:
            log.info("ckpt_path=last: resuming from %s", found)
            return str(found)
    raise ConfigError(
        f"ckpt_path=last found no loadable checkpoint in {output_dir / 'checkpoints'} "
        f"nor in the runs under {task_runs}: give the path of a .ckpt file"
    )


def forward_sigusr1_as_sigterm() -> None:
    """Treat SIGUSR1 (the usual pre-emption warning of clusters) like SIGTERM.

    Lightning answers SIGTERM by raising in the training loop, where the
    ``OnExceptionCheckpoint`` callback writes a checkpoint before the process exits. Under
    SLURM, Lightning handles SIGUSR1 itself (checkpoint and re-queue), so this does nothing.
    """
    from lightning.fabric.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect() or not hasattr(signal, "SIGUSR1"):
        return

    def _forward(signum: int, frame: object) -> None:
        log.warning("received SIGUSR1: checkpointing and stopping, as for SIGTERM")
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGUSR1, _forward)


class FinalCheckpoint(Callback):
    """Writes ``last.ckpt`` when training ends, so that it always holds the final weights.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes it at validation only, so a run
    whose ``max_steps`` is not a multiple of ``val_check_interval`` would otherwise end with
    a ``last.ckpt`` that lags behind.

    Args:
        dirpath: the checkpoint folder.
    """

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save ``<dirpath>/last.ckpt`` (every rank takes part; Lightning writes on rank 0)."""
        trainer.save_checkpoint(self.dirpath / "last.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place.

    A rename within one folder is atomic, so a process killed while saving (pre-emption, OOM
    killer, Ctrl-C) leaves the previous ``last.ckpt`` intact instead of a truncated one.
    (Lightning's own writer stages through the system temp dir, which is atomic only when
    that lies on the same filesystem as the run.) A partial file a killed process left is
    removed by the next save of the same name. Remote paths (``s3://`` ...) go to
    Lightning's writer unchanged.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        """Save ``checkpoint`` to ``path`` atomically."""
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        remove_dead_partials(path.parent, glob.escape(path.name))
        with atomic_write(path, fsync=True) as partial, open(partial, "wb") as file:
            torch.save(checkpoint, file)

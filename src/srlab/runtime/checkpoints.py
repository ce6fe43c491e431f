"""The checkpoints of a run: written and read safely, found for a resume; who may write a run
dir; pre-emption signals.

* :class:`AtomicCheckpointIO` (the trainer's checkpoint plugin) writes every checkpoint to a
  partial file renamed into place, never writes weights that hold NaN or Inf, turns a failed
  write (a full disk) into one line that says which steps are lost, and reads checkpoints
  back (Lightning's resume) with :func:`srlab.weights.read_checkpoint` only, so a resumed
  file can never run code.
* :func:`resolve_ckpt_path` / :func:`newest_checkpoint`: what ``ckpt_path=last`` resumes from,
  the newest checkpoint that loads and holds finite weights.
* :func:`run_dir_lock`: one training process per run dir.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import shutil
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from srlab import zoo
from srlab.errors import CheckpointWriteError, ConfigError, NonFiniteWeightsError
from srlab.files import FolderInUseError, atomic_write, exclusive_folder, remove_dead_partials
from srlab.weights import read_checkpoint

log = logging.getLogger(__name__)

#: What a diverged run's errors suggest (NaN losses, NaN weights).
DIVERGENCE_CAUSES = (
    "Likely causes: a learning rate too high (lower model.optimizer.lr), fp16 overflow (use "
    "trainer.precision=bf16-mixed or 32-true), or exploding gradients (clip them: "
    "trainer.gradient_clip_val, or model.grad_clip for GAN tasks)."
)


def checkpoint_step(path: Path) -> int | None:
    """The global step stored in a checkpoint, or None if the file does not load."""
    try:
        # mmap: only the few bytes of the step are read, not the weights.
        return int(read_checkpoint(path, mmap=True)["global_step"])
    except Exception as error:  # noqa: BLE001 - any unreadable file is skipped, and said so
        log.warning("skipping checkpoint %s: it does not load (%s)", path, error)
        return None


def nonfinite_values(state_dict: Mapping[str, Any]) -> tuple[int, int]:
    """How many of the floating-point values of ``state_dict`` are NaN or infinite, of all."""
    bad = total = 0
    for value in state_dict.values():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad += int((~torch.isfinite(value)).sum())
            total += value.numel()
    return bad, total


def has_finite_weights(path: Path) -> bool:
    """Whether the checkpoint's ``state_dict`` holds no NaN or infinite value."""
    state = read_checkpoint(path, mmap=True).get("state_dict") or {}
    return nonfinite_values(state)[0] == 0


def newest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint in ``folder`` with the highest step that loads and holds finite
    weights (the newest file on ties).

    Only the weights of the winner (and of any newer file that turns out non-finite, left by
    a diverged run of an older srlab) are read in full.
    """
    found = []
    for path in folder.glob("*.ckpt"):
        step = checkpoint_step(path)
        if step is not None:
            found.append(((step, path.stat().st_mtime), path))
    for _, path in sorted(found, key=lambda item: item[0], reverse=True):
        if has_finite_weights(path):
            return path
        log.warning("skipping checkpoint %s: its weights hold NaN or infinite values", path)
    return None


def describe_newest(folder: Path) -> str:
    """``<path> (step <n>)`` of :func:`newest_checkpoint`, or a sentence saying there is none."""
    newest = newest_checkpoint(folder) if folder.is_dir() else None
    if newest is None:
        return f"none: {folder} holds no checkpoint with finite weights"
    return f"{newest} (step {checkpoint_step(newest)})"


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
    if zoo.is_zoo(ckpt_path):
        raise ConfigError(
            f"ckpt_path={ckpt_path} resumes a training run, and a zoo entry holds weights, not "
            f"a run's state: fine-tune it with model.pretrained={ckpt_path}"
        )
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
    """srlab's checkpoint plugin: atomic writes, no diverged weights, safe reads.

    Writing: each checkpoint goes to a partial file beside it, renamed into place. A rename
    within one folder is atomic, so a process killed while saving (pre-emption, OOM killer,
    Ctrl-C) leaves the previous ``last.ckpt`` intact instead of a truncated one. (Lightning's
    own writer stages through the system temp dir, which is atomic only when that lies on the
    same filesystem as the run.) A partial file a killed process left is removed by the next
    save of the same name. Weights with any NaN or infinite value are not written at all
    (:class:`~srlab.errors.NonFiniteWeightsError`): no file, ``last.ckpt``, the best or
    ``on_exception.ckpt``, can then hold a diverged network. A write that fails (a full
    disk) is one :class:`~srlab.errors.CheckpointWriteError` naming the folder, the free space
    and the checkpoint that a resume would start from.

    Reading (Lightning's ``trainer.fit(ckpt_path=...)``): :func:`srlab.weights.read_checkpoint`,
    ``torch.load(weights_only=True)`` always, so a crafted file never runs code.

    Remote paths (``s3://`` ...) go to Lightning's writer and reader, the reader with
    ``weights_only=True`` too.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        """Save ``checkpoint`` to ``path`` atomically, unless its weights are not finite.

        Raises:
            NonFiniteWeightsError: a weight is NaN or infinite (nothing is written).
            CheckpointWriteError: the file cannot be written (the previous one is intact).
        """
        step = checkpoint.get("global_step")
        bad, total = nonfinite_values(checkpoint.get("state_dict") or {})
        if bad:
            folder = Path(str(path)).parent
            raise NonFiniteWeightsError(
                f"training diverged: at step {step}, {bad:,} of {total:,} weights are NaN or "
                f"infinite, so {path} was not written (no checkpoint holds diverged weights). "
                f"The newest checkpoint with finite weights: {describe_newest(folder)}. "
                f"{DIVERGENCE_CAUSES}"
            )
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        remove_dead_partials(path.parent, glob.escape(path.name))
        try:
            with atomic_write(path, fsync=True) as partial, open(partial, "wb") as file:
                torch.save(checkpoint, file)
        except (OSError, RuntimeError) as error:
            cause = _os_error(error)
            if cause is None:
                raise  # not a file-system failure: a bug, with its traceback
            raise CheckpointWriteError(_write_failure(path, step, cause)) from error

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """The checkpoint at ``path``, read with ``torch.load(weights_only=True)`` whatever
        ``weights_only`` Lightning passes (a file must never run code when resumed).

        Raises:
            CheckpointError: the file is missing or does not load that way (one line).
        """
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        checkpoint = read_checkpoint(path)
        if map_location is not None:
            from lightning.fabric.utilities.apply_func import move_data_to_device

            if isinstance(map_location, str | torch.device):
                checkpoint = move_data_to_device(checkpoint, map_location)
        return checkpoint


def _os_error(error: BaseException) -> OSError | None:
    """The operating-system error behind ``error``: torch reports a failed write to a file
    object as ``RuntimeError: [enforce fail ...] unexpected pos``, with the OSError as its
    context."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _write_failure(path: Path, step: int | None, cause: OSError) -> str:
    reason = cause.strerror or str(cause)
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "its free space unknown"
    fix = (
        "free space there (or move the run with hydra.run.dir)"
        if cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "make it writable (or move the run with hydra.run.dir)"
    )
    return (
        f"cannot write checkpoint {path.name} into {path.parent} ({reason}; {free}): "
        f"training stopped at step {step} and the steps since the newest checkpoint that "
        f"was written are lost; that checkpoint is {describe_newest(path.parent)}. To go on, "
        f"{fix} and resume with ckpt_path=last"
    )


@contextlib.contextmanager
def run_dir_lock(output_dir: Path) -> Iterator[None]:
    """Make the training process that holds ``output_dir`` the only one that writes it.

    Two runs in one run dir (the same ``hydra.run.dir`` twice, a re-queued job whose first
    instance still runs) would interleave ``metrics.jsonl`` and their checkpoints
    (``last-v1.ckpt``). The first process of a run takes the lock
    (:func:`srlab.files.exclusive_folder`); its other DDP ranks, started by it, the
    scheduler or torchrun, write only through it and take none.

    Raises:
        ConfigError: another live process trains in ``output_dir``.
    """
    if not _is_first_process():
        yield
        return
    try:
        with exclusive_folder(output_dir):
            yield
    except FolderInUseError as busy:
        raise ConfigError(
            f"{output_dir} is in use by another training process ({busy.owner}): two runs "
            "in one run dir would mix their checkpoints and records. Wait for it to end (or "
            "stop it), or give this run another hydra.run.dir"
        ) from None


def _is_first_process() -> bool:
    # The variables the launchers (Lightning's, torchrun, SLURM, submitit) set per process.
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(os.environ.get(name, "0") in ("", "0") for name in ranks)

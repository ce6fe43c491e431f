"""How a Hydra job runs on several processes: every DDP rank trains that job's own config.

Lightning starts ranks 1..N-1 of a DDP job by running the entry script again with the same
``sys.argv`` plus ``hydra.run.dir=<run.dir>`` (``_SubprocessScriptLauncher``). Inside a Hydra
multirun that command still carries ``-m`` and the sweep's value lists, so each child ran a
sweep of its own, into a folder of its own, and with the Optuna sweeper sampled other
hyperparameters than its rank 0. :func:`ranks_rerun_this_job` makes the children rerun exactly
this job instead: it pickles the job's config together with its Hydra node (output dir, run
mode, overrides, resolver cache) and sets ``sys.argv`` to Hydra's
``--experimental-rerun <pickle>``, which runs the task on that config without composing,
sweeping or creating folders (the overrides Lightning appends are ignored).

Processes that a scheduler starts once per device (SLURM through submitit, ``torchrun``) need
none of this: Lightning reads their ranks from the environment. :func:`export_submitit_ranks`
does that for submitit's local executor, which Lightning does not know.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from srlab.errors import ConfigError

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)

# What the DDP ranks of a job load (beside Hydra's config.yaml in the job's .hydra/ folder).
RANK_CONFIG = "ddp_job.pickle"
# The variables Lightning's launcher sets in the launching process for its children; they must
# not outlive the job, or the next job of a sweep in this process would think its ranks exist.
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# Hydra warns that a rerun ignores command-line overrides: here those are Lightning's, ignored
# on purpose. The children inherit this process's environment.
_QUIET_RERUN = (
    "ignore:Experimental rerun CLI option:UserWarning,"
    "ignore:Config overrides are not supported:UserWarning"
)
# How long a finished job waits for its other ranks to exit before killing them.
_CHILD_EXIT_S = {True: 120.0, False: 10.0}  # keyed by "the job succeeded"


def config_digest(cfg: DictConfig) -> str:
    """A short hash of the resolved config: equal on every rank that trains the same job."""
    text = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def export_submitit_ranks() -> None:
    """Under submitit's local executor with several tasks, export each task's DDP rank.

    ``hydra/launcher=submitit_local`` starts ``trainer.devices`` tasks per job, as
    ``submitit_slurm`` does on a cluster; Lightning reads SLURM's variables itself but knows
    nothing of submitit's local ones, so this sets ``LOCAL_RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR`` and ``MASTER_PORT`` (from the job id, the same in every task) from them.
    Elsewhere it does nothing. Call it before the Trainer is built.
    """
    if os.environ.get("SUBMITIT_EXECUTOR") != "local":
        return
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) < 2 or "LOCAL_RANK" in os.environ:
        return
    from submitit.helpers import TorchDistributedEnvironment

    # Lightning maps trainer.devices to the devices it sees; hiding all but one per task
    # (submitit's default) would make it see a single device.
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


@contextlib.contextmanager
def ranks_rerun_this_job(trainer: L.Trainer, cfg: DictConfig) -> Iterator[None]:
    """Within this block, DDP ranks that Lightning starts rerun this Hydra job's config.

    Around ``trainer.fit``/``trainer.test`` of one job. Processes started by something else
    (torchrun, srun) each compose their own config: unless they are jobs of a sweep, they must
    be given one run folder (``hydra.run.dir``), or this raises :class:`ConfigError`. Logs ``rank R/W trains config
    <digest>`` on every rank of a multi-process run (each rank into its own log file), so a
    job's logs show whether all of its ranks trained the same config. When Lightning is going
    to start the other ranks itself, it saves the job's config to
    ``<output dir>/.hydra/ddp_job.pickle`` and points ``sys.argv`` at it. On exit it undoes
    what launching the ranks changed in this process (``sys.argv``, the variables Lightning
    sets for its children: ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``, ``WORLD_SIZE``,
    ``NODE_RANK``; the process group) and waits for the other ranks to exit, so the next job
    of a sweep starts afresh.
    """
    if trainer.world_size > 1:
        log.info(
            "rank %d/%d trains config %s",
            trainer.global_rank,
            trainer.world_size,
            config_digest(cfg),
        )
    launcher = _children_launcher(trainer)
    if launcher is None or not HydraConfig.initialized():
        _check_shared_run_dir(trainer)
        yield
        return
    _check_script_relaunch()
    saved_argv = sys.argv
    saved_env = {key: os.environ.get(key) for key in (*_DDP_ENV, "PYTHONWARNINGS")}
    sys.argv = [sys.argv[0], "--experimental-rerun", str(save_rank_config(cfg))]
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, (saved_env["PYTHONWARNINGS"], _QUIET_RERUN))
    )
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        sys.argv = saved_argv
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _destroy_process_group()
        _wait_for(launcher.procs, timeout=_CHILD_EXIT_S[succeeded])


def save_rank_config(cfg: DictConfig) -> Path:
    """Pickle the job's config with its Hydra node, as ``--experimental-rerun`` loads it.

    The ranks log to ``<job name>_ddp_process_<LOCAL_RANK>.log`` (Lightning's naming), not
    into rank 0's log file.
    """
    hydra_cfg = HydraConfig.get()
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        job.hydra = copy.deepcopy(hydra_cfg)
    with read_write(job.hydra):
        job.hydra.job.name = f"{hydra_cfg.job.name}_ddp_process_${{oc.env:LOCAL_RANK}}"
    folder = Path(hydra_cfg.runtime.output_dir) / (hydra_cfg.output_subdir or ".hydra")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RANK_CONFIG
    path.write_bytes(pickle.dumps(job))
    return path


def _children_launcher(trainer: L.Trainer):
    """Lightning's launcher when it will start this job's other ranks itself, else None."""
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )

    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher):
        return None  # one process, or processes started by spawn, SLURM, torchrun, submitit
    if launcher.cluster_environment.creates_processes_externally:
        return None
    return launcher


def _check_shared_run_dir(trainer: L.Trainer) -> None:
    # torchrun or srun start every rank as its own `python src/train.py`, and each composes its
    # own run folder name (the time, to the second, and a random id): the ranks must be told one.
    # Jobs of a sweep are fine: their folder was set when the sweep was launched. Lightning's
    # own environment covers the ranks it starts from the job's config (and submitit_local's).
    from lightning.fabric.plugins.environments import LightningEnvironment

    if trainer.world_size < 2 or not HydraConfig.initialized():
        return
    if isinstance(getattr(trainer.strategy, "cluster_environment", None), LightningEnvironment):
        return
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.RUN:
        return
    if any(o.startswith("hydra.run.dir=") for o in hydra_cfg.overrides.hydra):
        return
    raise ConfigError(
        f"the {trainer.world_size} DDP processes of this run were started outside Lightning "
        "(torchrun, srun, mpirun), and each would name its own run folder: give them one, "
        "e.g. hydra.run.dir=outputs/train/runs/<name> (README: Multi-node with torchrun)"
    )


def _check_script_relaunch() -> None:
    # Lightning runs `python <script> <argv>` only when the program was started as a script;
    # started as a module (`python -m ...`, e.g. submitit's job runner) it reruns that module,
    # which cannot take the rerun arguments.
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None:
        raise ConfigError(
            f"this DDP job runs inside `python -m {spec.name}`, and Lightning would start its "
            "other ranks by running that module again. Start training with "
            "`python src/train.py`, or under hydra/launcher=submitit_local|submitit_slurm run "
            "one task per device (hydra.launcher.tasks_per_node=${trainer.devices}, the "
            "default of conf/hydra/launcher/)"
        )


def _destroy_process_group() -> None:
    import torch.distributed as dist

    # Lightning leaves the process group to an atexit hook; a sweep's next job in this
    # process must create its own (new port, new ranks), not reuse the finished one.
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _wait_for(procs: list[subprocess.Popen], timeout: float) -> None:
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "DDP rank process %d still runs %.0f s after its job: killing it", proc.pid, timeout
            )
            proc.kill()
            proc.wait()


__all__ = [
    "RANK_CONFIG",
    "config_digest",
    "export_submitit_ranks",
    "ranks_rerun_this_job",
    "save_rank_config",
]

"""What identifies a run among many: its overrides, its sweep, and the code it ran."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 10  # a git call that takes longer (network filesystem) is not worth the wait
SRLAB_DIR = Path(__file__).resolve().parents[1]  # the code that runs: its checkout is the one


def job_overrides() -> list[str]:
    """This job's command-line overrides (in a multirun: the job's own, not the sweep's)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def run_name(cfg: DictConfig) -> str:
    """``<model>-x<scale>-<data>`` plus the job's overrides: the W&B run name."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    # model= and data= are already in the prefix.
    overrides = [o for o in job_overrides() if not o.startswith(("model=", "data="))]
    name = f"{choices.get('model', 'model')}-x{cfg.scale}-{choices.get('data', 'data')}"
    return " ".join([name, *overrides])


def run_group(cfg: DictConfig) -> str:
    """The W&B group: ``<task_name>/<sweep folder>`` for the jobs of a multirun, so that one
    sweep's runs are grouped together and apart from other sweeps; else ``<task_name>``."""
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return f"{cfg.task_name}/{Path(hydra_cfg.sweep.dir).name}"
    return str(cfg.task_name)


def git_state(path: str | Path = SRLAB_DIR) -> dict[str, Any]:
    """``{"git_commit": <sha>, "git_dirty": <bool>}`` of the git checkout holding ``path``.

    Dirty means uncommitted changes to tracked files (as ``git describe --dirty``). Both are
    None where ``path`` is not in a git checkout or git is not installed (an installed
    package, a container without git): provenance is nice to have, never a reason to fail.
    """
    try:
        commit = _git(path, "rev-parse", "HEAD")
        dirty = bool(_git(path, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("no git state for %s: %s", path, error)
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def run_info() -> dict[str, Any]:
    """The job's overrides and the git state of the srlab code: what re-runs this run."""
    return {"overrides": job_overrides(), **git_state()}


def _git(path: str | Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(path), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return result.stdout.strip()


def sweep_overrides() -> dict[str, Any]:
    """The overrides of this multirun job that its sweep varies, as ``{key: typed value}``
    (``{"model.optimizer.lr": 0.001}``); empty outside a multirun.

    Varied keys are those of the sweep's ``hydra.sweeper.params`` (the Optuna search space,
    or Hydra's basic sweeper's) and the command line's sweep overrides (``a=1,2``,
    ``range(...)``), which the basic sweeper saves in ``<sweep dir>/multirun.yaml``. Where
    neither says (a launcher that saved nothing), every override of the job counts.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return {}
    hydra_cfg = HydraConfig.get()
    parser = OverridesParser.create()
    job = parser.parse_overrides(list(hydra_cfg.overrides.task))
    swept = set((OmegaConf.select(hydra_cfg, "sweeper.params") or {}).keys())
    saved = Path(hydra_cfg.sweep.dir, "multirun.yaml")
    if saved.is_file():
        sweep = OmegaConf.select(OmegaConf.load(saved), "hydra.overrides.task") or []
        swept |= {
            o.key_or_group for o in parser.parse_overrides(list(sweep)) if o.is_sweep_override()
        }
    return {o.key_or_group: o.value() for o in job if not swept or o.key_or_group in swept}

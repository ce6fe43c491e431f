"""W&B set-up that works offline by default: mode choice, files inside the run dir, resume ids."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from srlab.tracking.dashboard import SRLabWandbLogger
from srlab.weights import read_checkpoint

log = logging.getLogger(__name__)

ONLINE_INIT_TIMEOUT_S = 15  # the longest an unreachable W&B server may delay training
RUN_ID_KEY = "wandb_run_id"  # where checkpoints keep the W&B run id, so resumes continue it

# Whether the user chose a staging dir before srlab started: then we leave it alone.
_USER_DATA_DIR = os.environ.get("WANDB_DATA_DIR")


def has_api_key() -> bool:
    """Whether a W&B API key is configured (``WANDB_API_KEY`` or ``wandb login``'s netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if not path.is_file():
        return False
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError) as error:
        log.warning("W&B: cannot read %s (%s); treating W&B as not logged in", path, error)
        return False


def resolve_mode(mode: str | None = None) -> str:
    """The W&B mode: ``mode`` if given, else ``WANDB_MODE``, else online with a key, else offline.

    Offline needs no network and no account: the run is written to disk and can be uploaded
    later with ``wandb sync``. Without this fallback W&B raises at once when no key is set.
    """
    if mode:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if has_api_key() else "offline"


def wandb_logger(
    save_dir: str,
    project: str = "srlab",
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    mode: str | None = None,
    id: str | None = None,  # noqa: A002 - the name W&B and Lightning use
    init_timeout: float = ONLINE_INIT_TIMEOUT_S,
    **kwargs,
) -> SRLabWandbLogger:
    """A Lightning ``WandbLogger`` whose files live in ``save_dir`` (the run's output dir), with
    srlab's dashboard additions (best-value summaries, sweep keys, input artifacts:
    :class:`srlab.tracking.dashboard.SRLabWandbLogger`).

    Args:
        save_dir: the Hydra output dir; W&B writes ``<save_dir>/wandb/``, and stages
            artifacts in ``<save_dir>/wandb/data`` unless ``WANDB_DATA_DIR`` is set.
        project: W&B project.
        name: run name shown in the W&B UI.
        group: run group (runs of one sweep or experiment).
        tags: run tags.
        mode: ``online``, ``offline`` or ``disabled``; None chooses (see :func:`resolve_mode`).
        id: the run id; passing the id of an earlier run continues that run (resume).
        init_timeout: seconds an online run may wait for the server before it logs offline.
        **kwargs: passed on to ``WandbLogger`` (``entity``, ``job_type``, ``log_model`` ...).
    """
    mode = resolve_mode(mode)
    Path(save_dir, "wandb").mkdir(parents=True, exist_ok=True)
    if _USER_DATA_DIR is None:
        os.environ["WANDB_DATA_DIR"] = str(Path(save_dir, "wandb", "data"))
    if mode == "offline" and not os.environ.get("WANDB_MODE"):
        log.info(
            "W&B: no API key found, logging offline to %s/wandb; upload later with "
            "`wandb sync <run folder>` (printed at the end of the run)",
            save_dir,
        )
    options = dict(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags or []),
        id=id,
        resume="allow" if id else None,
        **kwargs,
    )
    if mode != "online":
        return SRLabWandbLogger(mode=mode, **options)
    # Online: start the run now, with a bounded wait, so that an unreachable server costs at
    # most init_timeout and the run goes on offline instead of hanging or dying.
    import wandb

    logger = SRLabWandbLogger(
        mode="online", settings=wandb.Settings(init_timeout=init_timeout), **options
    )
    try:
        logger.experiment  # noqa: B018 - starts the W&B run (rank 0 only)
    except Exception as error:  # noqa: BLE001 - any W&B failure falls back to offline
        log.warning(
            "W&B: cannot reach the server (%s): logging offline to %s/wandb instead; upload "
            "later with `wandb sync`",
            error,
            save_dir,
        )
        # The failed run still holds its id in W&B's service process: shut that down so the
        # offline run can take the same id (a later `wandb sync` then continues one run).
        wandb.teardown()
        return SRLabWandbLogger(mode="offline", **options)
    return logger


def run_id_from_checkpoint(path: str | Path) -> str | None:
    """The W&B run id stored in a checkpoint by :class:`srlab.tracking.RunIdCallback`.

    Raises:
        CheckpointError: the file does not load with ``torch.load(weights_only=True)``
            (:func:`srlab.weights.read_checkpoint`), so nothing in it ran.
    """
    # mmap avoids reading the weights just to get one string out of the file.
    checkpoint = read_checkpoint(path, mmap=True)
    return checkpoint.get(RUN_ID_KEY) if isinstance(checkpoint, dict) else None


def finish_wandb(loggers: list, failed: bool = False) -> None:
    """Close the W&B run of ``loggers`` (if one was started), flushing it to disk.

    Needed between jobs that share a process (Hydra multirun, tests): otherwise the next
    ``WandbLogger`` silently reuses the still-open run.
    """
    import wandb

    started = any(isinstance(x, WandbLogger) and x._experiment is not None for x in loggers)
    if started and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)


def offline_run_dir(logger: WandbLogger) -> Path | None:
    """The folder of an offline W&B run (the argument of ``wandb sync``), else None."""
    experiment = logger.experiment
    if getattr(experiment, "offline", False) or getattr(experiment.settings, "mode", "") == (
        "offline"
    ):
        return Path(experiment.dir).parent
    return None

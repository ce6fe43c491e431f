"""The training pipeline behind ``src/train.py``: config in, trained and tested model out."""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import string
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from srlab.app.network import resolve_auto_net
from srlab.app.report import print_summary
from srlab.data import SRDataModule
from srlab.errors import ConfigError, SRLabError
from srlab.metrics.perceptual import PerceptualMetrics
from srlab.models import NetworkComplexity, summary
from srlab.models.community import check_precision
from srlab.runtime.checkpoints import (
    forward_sigusr1_as_sigterm,
    newest_checkpoint,
    resolve_ckpt_path,
    run_dir_lock,
)
from srlab.runtime.config_check import check_targets, check_values
from srlab.runtime.launch import ranks_rerun_this_job
from srlab.tasks.evaluation import EvalOptions
from srlab.tracking import (
    RunIdCallback,
    finish_wandb,
    run_group,
    run_id_from_checkpoint,
    run_info,
    run_name,
)

log = logging.getLogger(__name__)


def _quiet_resume_warnings() -> None:
    """Silence Lightning's warnings about resuming that do not apply to srlab's runs."""
    # With OnExceptionCheckpoint configured, Lightning looks for a "last" checkpoint to resume
    # from on every fit and warns when a fresh run has none; srlab resolves resumes itself.
    warnings.filterwarnings("ignore", message=r".*\(ckpt_path=None\)` was called without a model")
    warnings.filterwarnings("ignore", message=r".*but there is no last checkpoint available")
    # Lightning only knows loaders with their own state_dict; srlab's training order is resumed
    # by the DataModule's state (SRDataModule.state_dict), so a mid-epoch resume is exact.
    warnings.filterwarnings(
        "ignore", message=r"You're resuming from a checkpoint that ended before"
    )


def train(cfg: DictConfig) -> float | None:
    """Fit ``cfg.model`` on ``cfg.data``, test the best checkpoint, print a summary.

    Returns:
        For Hydra sweepers to optimize: ``cfg.optimized_metric`` (see :func:`_objective`).
    """
    _quiet_resume_warnings()
    # Values first (no import, no file): data.batch_size=abc or scale=0 is one line now.
    check_values(cfg)
    output_dir = Path(cfg.paths.output_dir)
    # One training process per run dir: a second one would mix checkpoints and records.
    with run_dir_lock(output_dir):
        # The checkpoint to resume from is read before anything is built: a file that is
        # not a checkpoint (text, empty, cut short, pickled code) fails in seconds.
        ckpt_path = _resume_from(cfg, output_dir)
        # A W&B sweep agent (`wandb agent`, sweeps/*.yaml) names its run in WANDB_RUN_ID.
        resumed = run_id_from_checkpoint(ckpt_path) if ckpt_path else None
        run_id = resumed or os.environ.get("WANDB_RUN_ID") or _new_run_id()
        datamodule, model, net_summary = build(cfg)

        loggers = instantiate_loggers(cfg, run_id)
        callbacks = instantiate_callbacks(cfg, with_loggers=bool(loggers))
        callbacks.append(RunIdCallback(run_id))
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        with ranks_rerun_this_job(trainer, cfg):
            return _fit_and_test(cfg, trainer, model, datamodule, loggers, net_summary, ckpt_path)


def _resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint file this run resumes from (``ckpt_path``), or None for a fresh run."""
    requested = cfg.get("ckpt_path")
    if requested is None and newest_checkpoint(output_dir / "checkpoints") is not None:
        # A re-run in a run dir that has checkpoints (a re-queued job): Lightning resumes from
        # them anyway when OnExceptionCheckpoint is configured; say so and keep the W&B run.
        log.info("%s already has checkpoints: resuming (ckpt_path=last)", output_dir)
        requested = "last"
    return resolve_ckpt_path(
        requested, output_dir, Path(cfg.paths.log_dir) / cfg.task_name / "runs"
    )


def build(
    cfg: DictConfig, prepare: bool = True
) -> tuple[SRDataModule, L.LightningModule, NetworkComplexity]:
    """The data module, the task and the network's size for the training config ``cfg``.

    Everything a run needs before its Trainer, checked: every key under ``data``, ``model`` and
    ``trainer`` against what it builds, every dataset file located (and, with ``prepare``,
    downloaded and decoded into the cache), the network's scale against ``scale``.
    """
    resolve_auto_net(cfg)  # model.net=auto: the architecture of model.pretrained
    # Typos in model/data/trainer keys and impossible values fail now, naming the key.
    check_values(cfg)
    for group in ("data", "model", "trainer"):
        check_targets(cfg.get(group), group)
    L.seed_everything(cfg.seed, workers=True)
    # _convert_=all: plain lists/dicts, so checkpoints hold no OmegaConf objects and load with
    # torch.load(weights_only=True).
    datamodule: SRDataModule = _instantiate_user_config(cfg.data, "data")
    datamodule.require_train_set()
    # The network before any download or cache build: a scale it cannot upsample by fails
    # in seconds, not after decoding a dataset at that scale.
    if "_target_" not in cfg.model:  # conf/model/bicubic.yaml: a network with nothing to learn
        raise ConfigError(
            f"model={cfg.model.get('name')} has no training task (no model._target_): it has "
            f"nothing to learn; score it with python src/eval.py model={cfg.model.get('name')} "
            "scale=<2|3|4>"
        )
    model: L.LightningModule = _instantiate_user_config(cfg.model, "model")
    _check_scale(cfg, model, datamodule)
    # Perceptual metrics (metrics.perceptual): their weights load now, before any download.
    model.configure_metrics(PerceptualMetrics.from_config(cfg.get("metrics")))
    check_precision(
        model.net, cfg.trainer.get("precision"), "trainer.precision", "bf16-mixed or 32-true"
    )
    check_precision(model.net, cfg.inference.get("precision"), "inference.precision", "bf16 or 32")
    # Download (one process per node: DDP starts the other ranks only later, from fit), then
    # locate and check every file: bad data fails here, before any training.
    if prepare and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        datamodule.prepare_data()
    datamodule.verify()
    datamodule.require_train_set()  # now also: at least one full batch per epoch
    # Checkpoints carry the model config: eval, infer and export rebuild the network from them.
    model.describe(OmegaConf.to_container(cfg.model, resolve=True))
    # Size and compute of the network, to compare a run's speed with the hardware's peak.
    net_summary = summary(model.net, scale=cfg.scale, lr_size=32)
    log.info("model: %s", net_summary)
    model.macs_per_lr_pixel = net_summary.macs_per_lr_pixel  # measured once per run
    return datamodule, model, net_summary


def _fit_and_test(
    cfg: DictConfig,
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: SRDataModule,
    loggers: list[Logger],
    net_summary: NetworkComplexity,
    ckpt_path: str | None,
) -> float | None:
    """Log the config, fit, test the best checkpoint, print the summary; the objective."""
    failed = True
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        resolved["model_summary"] = {
            "params": net_summary.params,
            "macs_per_lr_pixel": net_summary.macs_per_lr_pixel,
        }
        # The job's overrides and the code's git commit: what it takes to re-run this run.
        resolved["run_info"] = run_info()
        for logger in loggers:
            logger.log_hyperparams(resolved)
        forward_sigusr1_as_sigterm()
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException:
            # Lightning's exception carries no exit code (status 0): schedulers must see the
            # job as killed, not finished, so exit as a process killed by SIGTERM does.
            log.warning(
                "stopped by SIGTERM after step %d; checkpoints/on_exception.ckpt holds the "
                "state: resume with ckpt_path=last (and hydra.run.dir=%s to keep this run dir)",
                trainer.global_step,
                cfg.paths.output_dir,
            )
            raise SystemExit(128 + signal.SIGTERM) from None
        objective = _objective(trainer, cfg.get("optimized_metric"))
        test_metrics = {}
        if cfg.get("test"):
            inference = cfg.get("inference") or {}
            # The test runs the network as src/eval.py does (tiling, self-ensemble).
            model.configure_evaluation(
                EvalOptions(
                    tile=inference.get("tile"),
                    tile_overlap=int(inference.get("tile_overlap", 32)),
                    self_ensemble=bool(inference.get("self_ensemble", False)),
                    memory_budget_gb=inference.get("memory_budget_gb"),
                )
            )
            test_metrics = _test_best(trainer, model, datamodule)
        if trainer.is_global_zero:
            print_summary(trainer, test_metrics, datamodule.test_set_names)
        failed = False
    finally:
        finish_wandb(loggers, failed=failed)
    return objective


def _test_best(
    trainer: L.Trainer, model: L.LightningModule, datamodule: SRDataModule
) -> dict[str, float]:
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint else ""
    if not best:
        log.warning("no best checkpoint was saved: testing the current weights")
    trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def instantiate_loggers(cfg: DictConfig, run_id: str) -> list[Logger]:
    """The loggers of ``cfg.logger``; the W&B one gets ``run_id``, and a name and group unless
    the config sets them (see :func:`srlab.tracking.run_name`, :func:`srlab.tracking.run_group`)."""
    loggers = []
    for name, node in (cfg.get("logger") or {}).items():
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"logger.{name} must be a config node with a _target_")
        overrides: dict[str, Any] = {}
        if node._target_.endswith("wandb_logger"):
            overrides = {
                "id": run_id,
                "name": node.get("name") or run_name(cfg),
                "group": node.get("group") or run_group(cfg),
            }
        loggers.append(instantiate(node, **overrides))
    return loggers


def instantiate_callbacks(cfg: DictConfig, with_loggers: bool = True) -> list[Callback]:
    """The callbacks of ``cfg.callbacks`` (null entries are skipped, so configs can drop one).

    Without loggers (``logger=none``) the learning-rate monitor, which needs one, is left out.
    """
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(f"callbacks.{name} must be a config node with a _target_")
        callback = instantiate(node)
        if isinstance(callback, LearningRateMonitor) and not with_loggers:
            log.info("callbacks.%s skipped: it needs a logger and logger=none", name)
            continue
        callbacks.append(callback)
    return callbacks


def _new_run_id() -> str:
    # W&B's own ids are 8 lowercase alphanumerics; any such string is a valid run id.
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _instantiate_user_config(node: DictConfig, where: str) -> Any:
    """``instantiate(node, _convert_="all")``, letting an :class:`SRLabError` out as itself.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException``; for the errors
    a user fixes (an unknown evaluation set, no VGG weights for the perceptual loss, pretrained
    weights not found) that would bury the message in a traceback instead of the one line of
    ``report_user_errors``. A ``ValueError`` of a constructor is a value it refuses (a network
    asked for a scale it cannot upsample by): a :class:`ConfigError` naming the config node.
    """
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__
        while isinstance(cause, InstantiationException):
            cause = cause.__cause__
        if isinstance(cause, SRLabError):
            raise cause from None
        if isinstance(cause, ValueError):
            found = re.search(r"full_key: (\S+)", str(exc))
            log.debug("%s refused its config", where, exc_info=cause)
            raise ConfigError(f"{found.group(1) if found else where}: {cause}") from exc
        raise


def _check_scale(cfg: DictConfig, model: L.LightningModule, datamodule: SRDataModule) -> None:
    if len(datamodule.train_scales) > 1 and not getattr(model.net, "any_scale", False):
        raise ConfigError(
            f"data.train_scales={datamodule.train_scales} needs a network that upsamples by "
            f"any scale (VDSR), but {type(model.net).__name__} upsamples x{model.scale} only: "
            "set data.train_scales=null"
        )
    net_scale = getattr(model, "scale", None)
    if net_scale is not None and net_scale != cfg.scale:
        raise ConfigError(
            f"the network upsamples x{net_scale} but scale={cfg.scale}: set model.net.upscale "
            "to ${scale} in the model config (or drop the override)"
        )


def _objective(trainer: L.Trainer, name: str | None) -> float | None:
    """What ``train`` returns for sweepers: metric ``name`` (``optimized_metric``) after fit.

    The checkpoint monitor (``val/psnr``, also when ``name`` is null) gives its best value, any
    other metric its last one. Read before testing: choosing hyperparameters by the test sets
    would overfit them.
    """
    checkpoint = trainer.checkpoint_callback
    monitor = checkpoint.monitor if isinstance(checkpoint, ModelCheckpoint) else None
    if name in (None, monitor) and monitor and checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    value = trainer.callback_metrics.get(name or "val/psnr")
    if value is None and name is not None:
        logged = ", ".join(sorted(trainer.callback_metrics)) or "none"
        raise ConfigError(
            f"optimized_metric={name} was not logged by the end of training (logged: {logged}): "
            "set optimized_metric (conf/hparams_search/*.yaml or the command line) to one of "
            "them, and make sure validation runs (trainer.val_check_interval)"
        )
    return None if value is None else float(value)


__all__ = ["build", "instantiate_callbacks", "instantiate_loggers", "train"]

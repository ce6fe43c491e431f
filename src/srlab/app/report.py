"""The end-of-run summary: test metrics beside the bicubic baseline, and where things are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from rich.console import Console
from rich.table import Table

from srlab.metrics.perceptual import FULL_REFERENCE, NO_REFERENCE
from srlab.tracking import offline_run_dir


def metrics_table(metrics: Mapping[str, float], set_names: Sequence[str], stage: str) -> Table:
    """A table of ``<stage>/<Set>/{psnr,ssim}`` beside ``..._bicubic``, one row per set, and
    the perceptual metrics that were scored (``lpips``, ``dists``, ``niqe``: SR, then bicubic)."""
    table = Table(title=f"{stage} metrics (Y channel, border shaved)")
    perceptual = [
        name
        for name in (*FULL_REFERENCE, *NO_REFERENCE)
        if any(f"{stage}/{s}/{name}" in metrics for s in set_names)
    ]
    columns = ["set", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", "gain (dB)"]
    columns += [f"{label} {name.upper()}" for name in perceptual for label in ("SR", "bicubic")]
    for column in columns:
        table.add_column(column, justify="left" if column == "set" else "right")
    for name in set_names:
        psnr = metrics.get(f"{stage}/{name}/psnr")
        ssim = metrics.get(f"{stage}/{name}/ssim")
        psnr_bic = metrics.get(f"{stage}/{name}/psnr_bicubic")
        ssim_bic = metrics.get(f"{stage}/{name}/ssim_bicubic")
        gain = None if psnr is None or psnr_bic is None else psnr - psnr_bic
        extra = [
            _fmt(metrics.get(f"{stage}/{name}/{metric}{suffix}"), ".4f")
            for metric in perceptual
            for suffix in ("", "_bicubic")
        ]
        table.add_row(
            name,
            _fmt(psnr, ".2f"),
            _fmt(ssim, ".4f"),
            _fmt(psnr_bic, ".2f"),
            _fmt(ssim_bic, ".4f"),
            _fmt(gain, "+.2f"),
            *extra,
        )
    return table


def print_summary(
    trainer: L.Trainer, test_metrics: Mapping[str, float], set_names: Sequence[str]
) -> None:
    """Print the test table, the output dir, the checkpoints and how to upload offline runs."""
    console = Console()
    if test_metrics:
        console.print(metrics_table(test_metrics, set_names, "test"))
    console.print(f"output dir:  {trainer.default_root_dir}", soft_wrap=True)
    checkpoint = trainer.checkpoint_callback
    if isinstance(checkpoint, ModelCheckpoint):
        if checkpoint.best_model_path:
            console.print(f"best ckpt:   {checkpoint.best_model_path}", soft_wrap=True)
        if checkpoint.last_model_path:
            console.print(f"last ckpt:   {checkpoint.last_model_path}", soft_wrap=True)
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            run_dir = offline_run_dir(logger)
            if run_dir is not None:
                console.print(
                    f"W&B offline run; upload it with:  wandb sync {run_dir}", soft_wrap=True
                )
            elif logger.experiment.url:
                console.print(f"W&B run:     {logger.experiment.url}", soft_wrap=True)


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)

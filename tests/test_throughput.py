"""Throughput in the training logs (Lightning's ThroughputMonitor fed with the network's MACs),
and a smoke run of ``benchmarks/throughput.py`` at tiny sizes (no timing is asserted)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers import compose_config
from hydra.utils import instantiate

from srlab.models import summary
from srlab.pipeline import train

FAST = ["debug=fast", "logger=csv", "test=false", "callbacks.throughput.window_size=2"]


def test_a_short_run_logs_patches_and_flops_per_second(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, FAST)
    train(cfg)
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if row.get("train/device/samples_per_sec")]
    assert rows  # from the step that fills the window on
    patches = [float(row["train/device/samples_per_sec"]) for row in rows]
    flops = [float(row["train/device/flops_per_sec"]) for row in rows]
    assert all(value > 0 for value in patches)
    # Both rates divide the same window's counts by the same time, so their ratio is the
    # FLOPs of one patch: 2 x MACs per LR pixel x the LR pixels of a patch.
    net = instantiate(cfg.model.net)
    lr_side = cfg.data.patch_size // cfg.scale
    per_patch = 2 * summary(net, scale=cfg.scale, lr_size=16).macs_per_lr_pixel * lr_side**2
    for f, p in zip(flops, patches, strict=True):
        assert f / p == pytest.approx(per_patch, rel=1e-6)

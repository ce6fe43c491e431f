"""Throughput in the training logs (Lightning's ThroughputMonitor fed with the network's MACs),
and a smoke run of ``benchmarks/throughput.py`` at tiny sizes (no timing is asserted)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config
from hydra.utils import instantiate
from PIL import Image
from skimage import data

from srlab.app.train import train
from srlab.errors import ConfigError
from srlab.models import summary
from srlab.tracking.throughput import slow_precision_warning

FAST = ["debug=fast", "logger=csv", "test=false", "callbacks.throughput.window_size=2"]


def test_a_short_run_logs_patches_and_flops_per_second(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, FAST)
    train(cfg)
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as file:
        reader = csv.DictReader(file)
        rows = [row for row in reader if row.get("train/device/samples_per_sec")]
    # Training only: validation throughput would be logged at validation batch indices.
    assert not [key for key in reader.fieldnames if key.startswith(("validate/", "test/"))]
    assert rows  # from the step that fills the window on
    patches = [float(row["train/device/samples_per_sec"]) for row in rows]
    flops = [float(row["train/device/flops_per_sec"]) for row in rows]
    assert all(value > 0 for value in patches)
    # Both rates divide the same window's counts by the same time, so their ratio is the
    # FLOPs of one patch: 2 x MACs per LR pixel x the LR pixels of a patch.
    net = instantiate(cfg.model.net)
    lr_side = cfg.data.patch_size // cfg.scale
    # lr_size as training measures it (srlab.app.train.build): the bicubic upscale inside
    # edsr_tiny makes MACs per pixel depend on the size by its border taps.
    per_patch = 2 * summary(net, scale=cfg.scale, lr_size=32).macs_per_lr_pixel * lr_side**2
    for f, p in zip(flops, patches, strict=True):
        assert f / p == pytest.approx(per_patch, rel=1e-6)


def test_bf16_is_flagged_only_on_cpus_without_fast_bf16(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr("srlab.tracking.throughput.cpu_has_fast_bf16", lambda: False)
    assert "32-true" in slow_precision_warning("bf16-mixed", cpu)
    assert slow_precision_warning("32-true", cpu) is None
    assert slow_precision_warning("bf16-mixed", cuda) is None
    monkeypatch.setattr("srlab.tracking.throughput.cpu_has_fast_bf16", lambda: True)
    assert slow_precision_warning("bf16-mixed", cpu) is None


def load_benchmark():
    """``benchmarks/throughput.py`` as a module (benchmarks/ is not a package)."""
    path = REPO_ROOT / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("benchmark_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    return module


def test_benchmark_sections_at_tiny_sizes_write_every_key(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    images = tmp_path / "HR"
    images.mkdir()
    Image.fromarray(data.astronaut()[:96, :128]).save(images / "a.png")
    Image.fromarray(data.coffee()[:80, :112]).save(images / "b.png")
    overrides = benchmark.benchmark_overrides(
        [
            "model.net.num_feat=8",
            "model.net.num_block=1",
            "data=folder",
            f"data.hr_dir={images}",
            f"data.val_sets=[{{name: Tiny, hr_dir: '{images}'}}]",
            "data.batch_size=2",
            "data.patch_size=32",
            "data.repeat=4",
            "data.num_workers=0",
            "bench.settings=[fp32_eager,fp32_cl]",
            "bench.rounds=1",
            "bench.warmup=1",
            "bench.steps=1",
            "bench.loader_batches=1",
            "bench.decode_batches=1",
            "bench.loop_warmup=1",
            "bench.loop_steps=1",
            "bench.bare_rounds=2",
            "bench.infer_size=24",
            "bench.infer_rounds=2",
            "bench.tile=16",
            "bench.tile_overlap=4",
        ]
    )
    cfg = compose_config(tmp_path / "out", overrides)
    assert cfg.model.net._target_.endswith("EDSR") and cfg.data.batch_size == 2
    results = benchmark.run_benchmark(cfg)
    table = benchmark.write_results(results, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "throughput.json").read_text())
    for key in (
        "loader_decode_patches_per_s",
        "loader_cached_patches_per_s",
        "step_fp32_eager_patches_per_s",
        "step_fp32_cl_patches_per_s",
        "step_best_patches_per_s",
        "train_loop_patches_per_s",
        "train_loop_step_patches_per_s",
        "infer_untiled_megapixels_per_s",
        "infer_tiled_megapixels_per_s",
        "infer_tiled_peak_rss_mb",
        "task_vs_bare_ratio",
        "infer_tiled_ratio",
    ):
        assert math.isfinite(written[key]) and written[key] > 0, key
    # One figure per interleaved round, and the ratios the table reports are theirs.
    task, bare = (
        written["task_vs_bare_task_patches_per_s"],
        written["task_vs_bare_bare_patches_per_s"],
    )
    assert len(task) == len(bare) == 2
    assert written["task_vs_bare_ratios"] == pytest.approx(
        [a / b for a, b in zip(task, bare, strict=True)]
    )
    assert len(written["infer_tiled_rounds"]) == len(written["infer_untiled_rounds"]) == 2
    assert written["step_best_setting"] in ("fp32_eager", "fp32_cl")
    assert (tmp_path / "out" / "throughput.md").read_text() == table
    assert "| full training loop (Trainer.fit) |" in table
    assert "| bare PyTorch loop (zero_grad, net, L1, backward, Adam) |" in table
    assert "| task step / bare PyTorch loop (median of 2 rounds) |" in table


def test_a_bad_step_setting_names_the_valid_form() -> None:
    benchmark = load_benchmark()
    with pytest.raises(ConfigError, match=r"bench.settings: 'fp8_cl'.*bf16_cl_compile"):
        benchmark.StepSetting.parse("fp8_cl")
    assert benchmark.StepSetting.parse("bf16_cl_compile") == benchmark.StepSetting(
        "bf16_cl_compile", "bf16-mixed", True, True
    )


def test_the_bare_loop_feeds_a_y_network_its_channels(tmp_path: Path) -> None:
    """The bare loop trains FSRCNN on the Y channel of the batch, as the task does (it fed the
    RGB batch to the 1-channel network and crashed)."""
    benchmark = load_benchmark()
    cfg = compose_config(tmp_path, ["model=fsrcnn", "data.batch_size=2", "data.patch_size=24"])
    data = benchmark.synthetic_data(cfg, 2)
    bare = benchmark.BareLoop(cfg, data.batch)
    assert bare.lr.shape[1] == bare.hr.shape[1] == 1
    assert bare.timed(1, 1).steps == 1

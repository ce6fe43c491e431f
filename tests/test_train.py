"""End to end through the real Hydra configs: train, validate, checkpoint, test, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config, offline_runs, read_offline_run

from srlab.app.train import train

FAST = ["debug=fast", "trainer.accelerator=cpu"]


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-staging"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_fast_run_trains_validates_checkpoints_and_logs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    best_psnr = train(compose_config(out, FAST))

    assert isinstance(best_psnr, float) and best_psnr > 10
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in checkpoints and any(p.startswith("best_") for p in checkpoints)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

    (run_dir,) = offline_runs(out)
    run = read_offline_run(run_dir)
    keys = run.keys()
    for key in (
        "train/loss",
        "val/psnr",
        "val/Sample/psnr",
        "val/Sample/ssim",
        "val/Sample/psnr_bicubic",
        "val/Sample/ssim_bicubic",
        "test/psnr",
        "test/Sample/psnr",
        "test/Sample/psnr_bicubic",
    ):
        assert key in keys, f"{key} not logged; logged: {sorted(keys)}"
    # The bicubic baseline is logged once, at the first validation (debug: steps 2 and 4).
    assert len(run.values("val/Sample/psnr_bicubic")) == 1
    assert len(run.values("val/Sample/psnr")) == 2
    images = [key for key in keys if key.startswith("val/Sample/images/")]
    assert images, "no comparison images were logged"
    pngs = list((out / "images" / "val").rglob("Sample_*.png"))
    assert len(pngs) == 2  # 2 validations x limit_val_batches=1 (debug=fast)
    assert run.name.startswith("edsr_tiny-x2-sample")


def test_resume_continues_step_and_wandb_run(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(compose_config(first, [*FAST, "test=false"]))
    last = first / "checkpoints" / "last.ckpt"
    first_run = read_offline_run(offline_runs(first)[0])

    second = tmp_path / "second"
    cfg = compose_config(second, [*FAST, "test=false", f"ckpt_path={last}", "trainer.max_steps=6"])
    train(cfg)

    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 6
    second_run = read_offline_run(offline_runs(second)[0])
    assert second_run.run_id == first_run.run_id
    steps = second_run.values("trainer/global_step")
    assert steps and min(steps) >= 4, f"resumed run logged steps {steps}"


def test_csv_tensorboard_and_no_logger(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(compose_config(out, [*FAST, "logger=csv", "test=false"]))
    metrics = (out / "csv" / "version_0" / "metrics.csv").read_text()
    assert "val/Sample/psnr_bicubic" in metrics and "train/loss" in metrics

    out = tmp_path / "tb"
    train(compose_config(out, [*FAST, "logger=tensorboard", "test=false"]))
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))

    out = tmp_path / "none"
    assert train(compose_config(out, [*FAST, "logger=none", "test=false"])) is not None
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_evaluation_only_data_config_refuses_to_train(tmp_path: Path, shared_data: Path) -> None:
    from srlab.errors import ConfigError

    cfg = compose_config(
        tmp_path, [*FAST, "data=set5", f"paths.data_dir={shared_data / 'benchmarks'}"]
    )
    with pytest.raises(ConfigError, match="data.train is null"):
        train(cfg)

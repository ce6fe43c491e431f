"""An unreachable W&B server costs a bounded wait, then the run logs offline."""

from __future__ import annotations

from pathlib import Path

from srlab.tracking import wandb_logger


def test_unreachable_server_falls_back_to_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)  # "logged in", so srlab tries online
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_SILENT", "true")
    # A short bound (the default is 15 s): the fallback, not the wait, is what is tested.
    logger = wandb_logger(
        save_dir=str(tmp_path), project="srlab-test", id="fallback1", init_timeout=2
    )
    try:
        assert logger.experiment.settings.mode == "offline"
        logger.log_metrics({"train/loss": 1.0}, step=0)
    finally:
        logger.experiment.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*-fallback1"))

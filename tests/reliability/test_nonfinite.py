"""A NaN loss skips its step; too many in a row stop training with a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config

from srlab.errors import NonFiniteLossError
from srlab.pipeline import train

FAST = ["debug=fast", "trainer.accelerator=cpu", "logger=csv", "test=false"]


def test_nan_steps_are_skipped_and_training_continues(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path,
        [*FAST, "~model.loss", "+model.loss={_target_:helpers.NaNLoss,bad_steps:2}",
         "+model.max_nonfinite_steps=5"],
    )  # fmt: skip
    train(cfg)
    metrics = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/nonfinite_steps" in metrics
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    # Skipped batches make no optimizer step: max_steps=4 counts the 4 finite ones.
    assert state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())


def test_too_many_nan_steps_stop_with_checkpoint(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path,
        [*FAST, "model.loss={_target_:helpers.NaNLoss}", "+model.max_nonfinite_steps=3"],
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="3 steps in a row") as info:
        train(cfg)
    assert "model.optimizer.lr" in str(info.value)
    saved = torch.load(tmp_path / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())

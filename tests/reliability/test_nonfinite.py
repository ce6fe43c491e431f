"""A NaN loss skips its step; too many in a row stop training with a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config

from srlab.app.train import train
from srlab.errors import NonFiniteLossError

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


def test_ddp_ranks_skip_a_step_together(tmp_path: Path) -> None:
    # Rank 1's first loss is NaN, rank 0's is not: both must skip that step (rank 0 counts
    # it), or rank 1 would miss the gradient all-reduce and the run would hang or drift.
    # A subprocess: Lightning re-launches the script for the second rank.
    run = tmp_path / "ddp"
    command = [
        sys.executable, "src/train.py", *FAST, "trainer=ddp_cpu", "trainer.devices=2",
        "~model.loss", "+model.loss={_target_:helpers.NaNOnRank,rank:1,bad_steps:1}",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "tests"), "WANDB_MODE": "offline"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = (run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    column = metrics[0].split(",").index("train/nonfinite_steps")
    counts = {row.split(",")[column] for row in metrics[1:]} - {""}
    assert counts == {"1.0"}  # logged by rank 0, whose own losses were all finite
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4

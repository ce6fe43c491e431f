"""A NaN loss skips its step; too many in a row stop training with a checkpoint; weights that
diverged to NaN stop training at once and are never saved, so no checkpoint (``last``, best,
``on_exception``) and no ``ckpt_path=last`` ever hands back a diverged network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config

from srlab.app.train import train
from srlab.errors import NonFiniteLossError, NonFiniteWeightsError
from srlab.runtime.checkpoints import resolve_ckpt_path

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


def _finite(path: Path) -> bool:
    state = torch.load(path, weights_only=True)["state_dict"]
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize("val_every", [1, 2], ids=["nan-val-psnr", "nan-loss"])
def test_diverged_weights_are_never_saved_and_the_last_good_ones_are_named(
    tmp_path: Path, val_every: int
) -> None:
    # lr=1e30: an update turns the weights into NaN/Inf. With validation after every step,
    # val/psnr is NaN where the best and last checkpoints are saved; otherwise the next loss
    # is NaN, where the exception checkpoint is saved.
    cfg = compose_config(
        tmp_path,
        [*FAST, "model.optimizer.lr=1e30", "trainer.max_steps=8",
         f"trainer.val_check_interval={val_every}",
         "callbacks.periodic_checkpoint.every_n_train_steps=1",
         "callbacks.periodic_checkpoint.save_top_k=-1"],
    )  # fmt: skip
    with pytest.raises(NonFiniteWeightsError) as info:
        train(cfg)
    message = str(info.value)
    checkpoints = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert checkpoints and all(_finite(path) for path in checkpoints), checkpoints
    assert not (tmp_path / "checkpoints" / "on_exception.ckpt").exists()
    assert not any("nan" in path.name for path in checkpoints)  # no NaN-scored "best"
    step = max(torch.load(path)["global_step"] for path in checkpoints)
    newest = [path for path in checkpoints if torch.load(path)["global_step"] == step]
    assert any(f"{path} (step {step})" in message for path in newest), message
    assert "model.optimizer.lr" in message and "\n" not in message
    assert Path(resolve_ckpt_path("last", tmp_path, tmp_path / "none")) in newest


def test_ckpt_last_skips_a_checkpoint_with_nan_weights(tmp_path: Path) -> None:
    # Left by an older srlab, or copied from elsewhere: the newer step, but diverged.
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"global_step": 5, "state_dict": {"net.w": torch.ones(3)}}, folder / "good.ckpt")
    nan = {"global_step": 9, "state_dict": {"net.w": torch.tensor([1.0, float("nan"), 0.0])}}
    torch.save(nan, folder / "last.ckpt")
    assert resolve_ckpt_path("last", tmp_path, tmp_path / "none") == str(folder / "good.ckpt")

"""Exact resume: training resumed from any checkpoint ends with the uninterrupted run's weights.

A killed run leaves the checkpoints written before the kill; resuming from one must retrace
the rest of the uninterrupted run: same batches in the same order (the sampler skips what was
trained), same crops and flips (seeded per patch), same optimizer and scheduler state. The
in-process test resumes from checkpoints mid-epoch, at an epoch's end and at a validation;
``test_resume.py`` kills a real training process with SIGKILL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_config

from srlab.pipeline import train

STEPS = 9
# 10 training images x repeat 2 / batch 3 = 6 batches per epoch (the last incomplete one is
# dropped): step 6 ends an epoch; validation every 3 steps.
RUN = [
    "trainer.accelerator=cpu",
    "logger=csv",
    "test=false",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=3",
    "trainer.limit_val_batches=1",
    "data.batch_size=3",
    "data.patch_size=32",
    "data.repeat=2",
    "data.num_workers=0",
    "callbacks.periodic_checkpoint.every_n_train_steps=1",
    "callbacks.periodic_checkpoint.save_top_k=-1",
]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train(compose_config(run_dir, RUN))
    return run_dir


@pytest.mark.parametrize(
    "checkpoint",
    [
        "step0000002.ckpt",  # mid-epoch
        "step0000006.ckpt",  # the last batch of the first epoch, and a validation
        "step0000007.ckpt",  # the second epoch
    ],
)
def test_resumed_run_ends_with_the_uninterrupted_weights(
    uninterrupted: Path, tmp_path: Path, checkpoint: str
) -> None:
    assert len(list((uninterrupted / "checkpoints").glob("step*.ckpt"))) == STEPS
    ckpt = uninterrupted / "checkpoints" / checkpoint
    train(compose_config(tmp_path, [*RUN, f"ckpt_path={ckpt}"]))
    expected, resumed = _weights(uninterrupted), _weights(tmp_path)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == STEPS
    for name, weight in expected.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)

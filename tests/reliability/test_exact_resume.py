"""Exact resume: training resumed from any checkpoint ends with the uninterrupted run's weights.

A killed run leaves the checkpoints written before the kill; resuming from one must retrace
the rest of the uninterrupted run: same batches in the same order (the sampler skips what was
trained), same crops and flips (seeded per patch), same optimizer and scheduler state. The
in-process test resumes from checkpoints mid-epoch, at an epoch's end and at a validation;
``test_resume.py`` kills a real training process with SIGKILL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config

from srlab.app.train import train

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


def test_resume_after_sigterm_equals_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path):
    # Pre-emption: Lightning stops at the end of step 4 and on_exception.ckpt is written.
    stop = "+callbacks.sigterm._target_=helpers.SigtermAtStep"
    with pytest.raises(SystemExit) as stopped:
        train(compose_config(tmp_path, [*RUN, stop, "+callbacks.sigterm.step=4"]))
    assert stopped.value.code == 143
    saved = torch.load(tmp_path / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert saved["global_step"] == 4
    train(compose_config(tmp_path, [*RUN, "ckpt_path=last"]))
    expected, resumed = _weights(uninterrupted), _weights(tmp_path)
    for name, weight in expected.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)


# A slow disk for the killed processes: each checkpoint lingers as a partial file for 0.3 s
# before it is synced and renamed, so the test can kill a process in the middle of a save.
SLOW_FSYNC = """
import os, time
_fsync = os.fsync
def _slow_fsync(fd):
    time.sleep(0.3)
    _fsync(fd)
os.fsync = _slow_fsync
"""


def _start(run_dir: Path, slow_disk: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(slow_disk), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "src/train.py", *RUN, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _kill_when(process: subprocess.Popen, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run did not get there within 120 s"
        time.sleep(0.02)
    process.kill()  # SIGKILL: no handler runs, nothing is flushed
    process.communicate(timeout=60)


def test_kill_9_then_resume_equals_the_uninterrupted_run(uninterrupted: Path, tmp_path: Path):
    slow_disk = tmp_path / "slow_disk"
    slow_disk.mkdir()
    (slow_disk / "sitecustomize.py").write_text(SLOW_FSYNC)
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"

    # Killed while step 3's checkpoint is being written: the partial file exists, unrenamed.
    first = _start(run_dir, slow_disk)
    _kill_when(first, lambda: any(checkpoints.glob(".step0000003.ckpt.*.part")))
    assert not (checkpoints / "step0000003.ckpt").exists()

    # The same command again resumes in its run dir; killed between two later saves.
    second = _start(run_dir, slow_disk)
    _kill_when(second, lambda: (checkpoints / "step0000005.ckpt").exists())
    assert not (checkpoints / f"step{STEPS:07d}.ckpt").exists()

    train(compose_config(run_dir, [*RUN, "ckpt_path=last"]))
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == STEPS
    expected, resumed = _weights(uninterrupted), _weights(run_dir)
    for name, weight in expected.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)


def test_resume_with_ema_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    ema = [
        "+callbacks.ema._target_=lightning.pytorch.callbacks.EMAWeightAveraging",
        "+callbacks.ema.decay=0.9",
    ]
    train(compose_config(tmp_path / "full", [*RUN, *ema]))
    ckpt = tmp_path / "full" / "checkpoints" / "step0000005.ckpt"
    train(compose_config(tmp_path / "resumed", [*RUN, *ema, f"ckpt_path={ckpt}"]))
    full = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    # The state dict holds the averaged weights; the callback state the current ones.
    torch.testing.assert_close(resumed["state_dict"], full["state_dict"], rtol=0, atol=1e-6)
    (ema_full,) = (v for k, v in full["callbacks"].items() if "EMAWeightAveraging" in k)
    (ema_resumed,) = (v for k, v in resumed["callbacks"].items() if "EMAWeightAveraging" in k)
    torch.testing.assert_close(ema_resumed, ema_full, rtol=0, atol=1e-6)

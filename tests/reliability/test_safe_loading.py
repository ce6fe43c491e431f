"""Safe loading: a crafted checkpoint runs no code, wherever srlab is handed it.

The file is a pickle whose unpickling would call ``open(<marker>, "w")`` (``__reduce__``):
``torch.load(weights_only=True)`` refuses it, so the marker file must never appear, and the
user gets one line that names the file: when resuming (``ckpt_path=``, which reads the W&B
run id first), when loading pretrained weights, and when ``ckpt_path=last`` looks for the
newest checkpoint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT
from torch import nn

from srlab.errors import SRLabError
from srlab.runtime.checkpoints import checkpoint_step
from srlab.tracking import run_id_from_checkpoint
from srlab.weights import CheckpointError, load_pretrained, trained_scale


class WritesAFile:
    """Unpickling this calls ``open(path, "w")``: it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """A ``.ckpt`` shaped like a Lightning checkpoint, with the payload beside its weights."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.ckpt"
    state = {f"net.{k}": v for k, v in nn.Conv2d(3, 3, 3).state_dict().items()}
    checkpoint = {
        "global_step": 4,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": state,
        "wandb_run_id": "abc123",
        "payload": WritesAFile(marker),
    }
    torch.save(checkpoint, path)
    assert not marker.exists()
    return path, marker


def assert_one_line_naming(error: BaseException, path: Path) -> None:
    message = str(error)
    assert isinstance(error, CheckpointError) and isinstance(error, SRLabError)
    assert "\n" not in message and str(path) in message
    assert "weights_only=True" in message and "io.open" in message  # what was refused


def test_the_payload_would_run_without_the_safe_reader(crafted: tuple[Path, Path]) -> None:
    # The check of the test itself: unpickling this file really does create the marker.
    path, marker = crafted
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_resume_reads_the_run_id_without_running_code(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    with pytest.raises(CheckpointError) as info:
        run_id_from_checkpoint(path)
    assert_one_line_naming(info.value, path)
    assert not marker.exists()


def test_pretrained_weights_load_without_running_code(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    assert trained_scale(path) is None  # read first, with mmap: refused too
    with pytest.raises(CheckpointError) as info:
        load_pretrained(nn.Conv2d(3, 3, 3), path)
    assert_one_line_naming(info.value, path)
    assert not marker.exists()


def test_ckpt_last_skips_it_without_running_code(
    crafted: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    path, marker = crafted
    with caplog.at_level(logging.WARNING, logger="srlab.runtime.checkpoints"):
        assert checkpoint_step(path) is None
    assert f"skipping checkpoint {path}" in caplog.text
    assert not marker.exists()


def test_train_with_ckpt_path_stops_with_one_line(crafted: tuple[Path, Path]) -> None:
    path, marker = crafted
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [
            sys.executable,
            "src/train.py",
            "debug=fast",
            "trainer.accelerator=cpu",
            "logger=csv",
            f"ckpt_path={path}",
            f"hydra.run.dir={path.parent / 'run'}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"srlab error: cannot read {path} with torch.load(weights_only=True)" in result.stderr
    assert not marker.exists()

"""The entry point as a user runs it: errors a user can fix are a message, not a stack trace.

This starts a subprocess because the process boundary is the point: exit status and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT


def test_missing_div2k_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "SRLAB_DATA_DIR": str(tmp_path / "data")}
    command = [
        sys.executable,
        "src/train.py",
        "model=edsr",
        "data=div2k",
        "trainer.devices=4",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "DIV2K" in result.stderr and "Expected layout" in result.stderr
    assert str(tmp_path / "data" / "DIV2K" / "DIV2K_train_HR") in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.val_sets=[nosuchset]", "nosuchset"),
        ("data.num_workers=-1", "data.num_workers=-1"),
    ],
)
def test_data_config_errors_are_one_line(override: str, message: str, tmp_path: Path) -> None:
    """Raised while Hydra instantiates the data module: still one line, exit 1."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    command = [sys.executable, "src/train.py", override, f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("srlab error:")]
    assert message in line

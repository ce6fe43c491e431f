"""The entry point as a user runs it: errors a user can fix are a message, not a stack trace.

This starts a subprocess because the process boundary is the point: exit status and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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

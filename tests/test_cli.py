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


def imported_modules(importtime_stderr: str) -> set[str]:
    """The modules that ``python -X importtime`` reported importing."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in importtime_stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["src/train.py", "--help"],
        ["src/train.py", "data.batchsize=4"],
        ["src/train.py", "model.optimizer.learning_rate=1"],
        ["src/eval.py", "data.test_set=[set5]"],
        ["src/infer.py", "--help"],
        ["src/export.py", "formats=onnx"],
    ],
)
def test_help_and_config_typos_answer_before_torch_is_imported(argv: list[str]) -> None:
    """What makes them fast (README, "Configs"): the entry scripts import torch, Lightning and
    W&B only inside the job, so Hydra's help and its errors come first."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = imported_modules(result.stderr)
    assert "hydra" in modules and "omegaconf" in modules
    assert not modules & {"torch", "lightning", "wandb", "numpy"}, sorted(modules)
    if argv[1] == "--help":
        assert result.returncode == 0 and "== Configuration groups ==" in result.stdout
    else:
        key = argv[1].split("=")[0].rsplit(".", 1)[-1]
        assert result.returncode == 1 and f"Key '{key}' is not in struct" in result.stderr

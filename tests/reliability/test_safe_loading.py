"""Safe loading: a crafted checkpoint runs no code, wherever srlab is handed it.

The file is a pickle whose unpickling would call ``open(<marker>, "w")`` (``__reduce__``):
``torch.load(weights_only=True)`` refuses it, so the marker file must never appear, and the
user gets one line that names the file: when resuming (``ckpt_path=``, which reads the W&B
run id first, and Lightning's own load through the checkpoint plugin), when loading
pretrained weights (``model.pretrained=``), when ``ckpt_path=last`` looks for the newest
checkpoint, and as the checkpoint of ``src/eval.py`` and ``src/infer.py``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config
from hydra.utils import instantiate
from torch import nn

from srlab.app.evaluate import evaluate
from srlab.app.infer import infer
from srlab.app.train import train
from srlab.errors import SRLabError
from srlab.runtime.checkpoints import AtomicCheckpointIO, checkpoint_step
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


def test_pretrained_weights_of_a_training_config_run_no_code(
    crafted: tuple[Path, Path], tmp_path: Path
) -> None:
    path, marker = crafted
    cfg = compose_config(tmp_path / "run", ["debug=fast", "logger=csv", f"model.pretrained={path}"])
    with pytest.raises(CheckpointError) as info:
        train(cfg)
    assert_one_line_naming(info.value, path)
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["eval", "infer"])
def test_eval_and_infer_checkpoints_run_no_code(
    crafted: tuple[Path, Path], tmp_path: Path, entry: str
) -> None:
    path, marker = crafted
    (tmp_path / "photos").mkdir()
    overrides = [f"ckpt_path={path}"]
    if entry == "infer":
        overrides += [f"input={tmp_path / 'photos'}", f"output={tmp_path / 'sr'}"]
    cfg = compose_config(tmp_path / "run", overrides, config_name=entry)
    with pytest.raises(CheckpointError) as info:
        (evaluate if entry == "eval" else infer)(cfg)
    assert_one_line_naming(info.value, path)
    assert not marker.exists()


def test_lightnings_resume_load_is_weights_only(
    crafted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # trainer.fit(ckpt_path=...) reads through the trainer's checkpoint plugin. Lightning
    # passes weights_only=None, which this variable (or an older torch) turns into False.
    path, marker = crafted
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    cfg = compose_config(tmp_path, ["trainer.accelerator=cpu"])
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    with pytest.raises(CheckpointError) as info:
        trainer.strategy.load_checkpoint(path)
    assert_one_line_naming(info.value, path)
    assert not marker.exists()


def test_no_source_file_turns_the_weights_only_check_off() -> None:
    offenders = [
        f"{source.relative_to(REPO_ROOT)}:{number}"
        for source in (REPO_ROOT / "src").rglob("*.py")
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if "weights_only=False" in line.replace(" ", "")
    ]
    assert offenders == []

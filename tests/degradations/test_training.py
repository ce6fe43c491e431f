"""Training with degradations: the degraded batch is logged at each validation, and a run
killed (SIGKILL) and resumed ends with the uninterrupted run's weights (1e-6 on CPU), with the
machinery of ``tests/reliability/test_exact_resume.py``."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, compose_config
from PIL import Image
from reliability.test_exact_resume import RUN, STEPS, _weights

from srlab.app.train import train
from srlab.data.degradations import PARAM_NAMES

DEGRADED = [*RUN, "data/degradation=realesrgan"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("degraded_uninterrupted")
    train(compose_config(run_dir, DEGRADED))
    return run_dir


def test_each_validation_logs_the_degraded_batch_and_its_parameters(uninterrupted: Path) -> None:
    folders = sorted((uninterrupted / "images" / "val").glob("step_*"))
    assert [f.name for f in folders] == ["step_0000003", "step_0000006", "step_0000009"]
    for folder in folders:
        picture = np.asarray(Image.open(folder / "train_degraded.png"))
        # 3 patches of 32 px (data.batch_size=3), LR | HR side by side.
        assert picture.shape == (3 * 32, 2 * 32, 3)
        with (folder / "train_degraded.csv").open() as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == 3 and list(rows[0]) == ["sample", "image", *PARAM_NAMES]
    first = (folders[0] / "train_degraded.csv").read_text()
    assert first != (folders[1] / "train_degraded.csv").read_text()  # another batch


def _start(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "src/train.py", *DEGRADED, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_kill_9_then_resume_with_degradations_equals_the_uninterrupted_run(
    uninterrupted: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    process = _start(run_dir)
    deadline = time.monotonic() + 180
    # Killed in the second epoch (6 batches per epoch), mid-way.
    while not (checkpoints / "step0000007.ckpt").exists():
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run did not reach step 7 within 180 s"
        time.sleep(0.02)
    process.kill()  # SIGKILL: no handler runs
    process.communicate(timeout=60)
    assert not (checkpoints / f"step{STEPS:07d}.ckpt").exists()
    train(compose_config(run_dir, [*DEGRADED, "ckpt_path=last"]))
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == STEPS
    expected, resumed = _weights(uninterrupted), _weights(run_dir)
    for name, weight in expected.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)


def test_resume_mid_first_epoch_with_degradations(uninterrupted: Path, tmp_path: Path) -> None:
    ckpt = uninterrupted / "checkpoints" / "step0000002.ckpt"
    train(compose_config(tmp_path, [*DEGRADED, f"ckpt_path={ckpt}"]))
    expected, resumed = _weights(uninterrupted), _weights(tmp_path)
    for name, weight in expected.items():
        torch.testing.assert_close(resumed[name], weight, rtol=0, atol=1e-6, msg=name)


def test_degradations_change_the_training(uninterrupted: Path, tmp_path: Path) -> None:
    # The same run with bicubic LR ends elsewhere: the degraded LR is what was trained on.
    train(compose_config(tmp_path, RUN))
    expected, bicubic = _weights(uninterrupted), _weights(tmp_path)
    assert any(not torch.allclose(bicubic[k], v, atol=1e-4) for k, v in expected.items())

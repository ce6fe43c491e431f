"""Pre-emption and resume: SIGTERM writes a checkpoint, ckpt_path=last finds the newest good one.

The SIGTERM test starts training in a subprocess: the signal and the process exit are the point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, compose_config

from srlab.app.train import train
from srlab.runtime.checkpoints import resolve_ckpt_path

FAST = ["debug=fast", "trainer.accelerator=cpu", "logger=csv", "test=false"]


def _fake_checkpoint(path: Path, step: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "state_dict": {}}, path)


def test_ckpt_last_takes_the_newest_checkpoint_that_loads(tmp_path: Path) -> None:
    runs = tmp_path / "outputs" / "train" / "runs"
    _fake_checkpoint(runs / "2026-01-01_00-00-00" / "checkpoints" / "last.ckpt", 50)
    _fake_checkpoint(runs / "2026-01-02_00-00-00" / "checkpoints" / "last.ckpt", 10)
    _fake_checkpoint(runs / "2026-01-02_00-00-00" / "checkpoints" / "step0000030.ckpt", 30)
    corrupt = runs / "2026-01-02_00-00-00" / "checkpoints" / "on_exception.ckpt"
    corrupt.write_bytes(b"not a checkpoint")  # e.g. a copy cut short by a full disk
    current = runs / "2026-01-03_00-00-00"
    # This run has none: the most recent earlier run's newest loadable checkpoint is used.
    found = resolve_ckpt_path("last", current, runs)
    assert found == str(runs / "2026-01-02_00-00-00" / "checkpoints" / "step0000030.ckpt")
    # A re-run in the same dir (a re-queued job) resumes from its own checkpoints first.
    _fake_checkpoint(current / "checkpoints" / "last.ckpt", 5)
    assert resolve_ckpt_path("last", current, runs) == str(current / "checkpoints" / "last.ckpt")


def test_sigterm_checkpoints_and_ckpt_last_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable, "src/train.py", *FAST, "trainer.max_steps=100000",
        "trainer.val_check_interval=100000", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    metrics = run_dir / "csv" / "version_0" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") > 2):
        assert process.poll() is None, process.stdout.read().decode()[-1500:]
        assert time.monotonic() < deadline, "training did not start within 120 s"
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode != 0, output[-3000:]
    saved = run_dir / "checkpoints" / "on_exception.ckpt"
    assert saved.is_file(), output[-3000:]
    step = torch.load(saved, weights_only=True)["global_step"]
    assert step > 0

    cfg = compose_config(run_dir, [*FAST, "ckpt_path=last", f"trainer.max_steps={step + 2}"])
    train(cfg)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == (
        step + 2
    )


def test_a_save_cut_short_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch):
    from srlab.runtime.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)

    def dying_save(obj, file):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed in the middle of the write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no partial file left


def test_partial_files_of_killed_processes_are_removed_by_the_next_save(tmp_path: Path) -> None:
    from srlab.files import HOST
    from srlab.runtime.checkpoints import AtomicCheckpointIO

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: a process SIGKILLed mid-save
    leftovers = {
        "dead": tmp_path / f".last.ckpt.{HOST}.{dead.pid}.1.part",
        "alive": tmp_path / f".last.ckpt.{HOST}.{os.getppid()}.1.part",  # still saving
        "other host": tmp_path / f".last.ckpt.otherhost.{dead.pid}.1.part",
    }
    for partial in leftovers.values():
        partial.write_bytes(b"half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"global_step": 3}, tmp_path / "last.ckpt")
    assert not leftovers["dead"].exists()
    assert leftovers["alive"].exists() and leftovers["other host"].exists()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 3


def test_metrics_history_keeps_one_row_per_step_after_a_resume(tmp_path: Path) -> None:
    # The interrupted part of a run (after the checkpoint it resumes from) is trained again:
    # its rows must not stay beside the new ones (step 6 twice, curves that jump back).
    run = [
        *FAST, "trainer.max_steps=6", "trainer.val_check_interval=2", "data.batch_size=2",
        "callbacks.periodic_checkpoint.every_n_train_steps=1",
        "callbacks.periodic_checkpoint.save_top_k=-1",
    ]  # fmt: skip
    train(compose_config(tmp_path, run))
    history = tmp_path / "metrics.jsonl"
    first = [json.loads(line) for line in history.read_text().splitlines()]
    assert [row["step"] for row in first] == [2, 4, 6]
    # A run killed after step 6 and resumed from step 3's checkpoint, in the same run dir;
    # then one resumed from step 4's, saved before step 4's validation.
    for step in (3, 4):
        ckpt = tmp_path / "checkpoints" / f"step{step:07d}.ckpt"
        train(compose_config(tmp_path, [*run, f"ckpt_path={ckpt}"]))
        rows = [json.loads(line) for line in history.read_text().splitlines()]
        assert [row["step"] for row in rows] == [2, 4, 6], rows
        assert rows[0] == first[0]  # what came before the checkpoint is kept as it was
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["metrics"]["val/psnr"]["best_step"] in (2, 4, 6)

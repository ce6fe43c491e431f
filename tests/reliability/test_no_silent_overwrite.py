"""Nothing is overwritten behind the user's back: one training process per run dir, and
``src/infer.py`` never replaces files inside its input folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO_ROOT, compose_config
from PIL import Image

from srlab.app.infer import infer
from srlab.app.train import train
from srlab.errors import ConfigError

HOLD_LOCK = """
import sys, time
from srlab.files import exclusive_folder
with exclusive_folder(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_training_process_in_a_run_dir_stops_first(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # The first run's process (its lock is what a running train() holds).
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )  # fmt: skip
    try:
        assert first.stdout.readline().strip() == "holding"
        cfg = compose_config(run_dir, ["debug=fast", "logger=csv", "test=false"])
        with pytest.raises(ConfigError) as info:
            train(cfg)
        message = str(info.value)
        assert f"{run_dir} is in use by another training process" in message
        assert f"pid {first.pid}" in message and "hydra.run.dir" in message
        assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.jsonl").exists()
    finally:
        first.kill()
        first.wait()
    # Its process gone (even killed with SIGKILL), the run dir is free again.
    assert train(cfg) is not None


def _photo(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def test_infer_never_overwrites_files_inside_its_input(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _photo(photos / "a.png", 10)
    _photo(photos / "sub" / "a.png", 200)  # an original, where output=photos/sub would write
    original = (photos / "sub" / "a.png").read_bytes()
    cfg = compose_config(
        tmp_path / "run",
        ["model=bicubic", "scale=2", f"input={photos}", f"output={photos / 'sub'}",
         "progress=false"],
        config_name="infer",
    )  # fmt: skip
    with pytest.raises(ConfigError) as info:
        infer(cfg)
    message = str(info.value)
    assert f"{photos / 'sub' / 'a.png'} by the result of {photos / 'a.png'}" in message
    assert "skip_existing=true" in message and "\n" not in message
    assert (photos / "sub" / "a.png").read_bytes() == original
    assert not (photos / "sub" / "sub").exists()

"""``python -m srlab.data.degrade``: a grid of degraded samples of one image."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from helpers import REPO_ROOT
from PIL import Image

from srlab.data.degradations import RealESRGANDegradation, degradation_config
from srlab.data.degrade import main


def _image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(np.kron(base, np.ones((6, 6, 1), dtype=np.uint8))).save(path)  # 72 x 60
    return path


def test_the_grid_holds_the_hr_crop_and_the_training_draws(tmp_path: Path) -> None:
    image = _image(tmp_path)
    out = tmp_path / "out"
    argv = [str(image), "--out", str(out), "--samples", "4", "--seed", "10", "--crop", "32",
            "--columns", "3", "first.noise_range=[1,5]"]  # fmt: skip
    assert main(argv) == 0
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 * 32, 3 * 32, 3)  # HR + 4 LR tiles, 3 per row
    with (out / "params.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [r["image"] for r in rows] == [f"photo@seed{s}" for s in range(10, 14)]
    assert all(1 <= float(r["s1_noise_sigma"]) <= 5 for r in rows)
    # Each LR is the degradation that training draws for that degradation seed.
    hr = torch.from_numpy(np.asarray(Image.open(image))[20:52, 14:46].copy()).permute(2, 0, 1)
    degrade = RealESRGANDegradation(degradation_config({"first": {"noise_range": [1, 5]}}))
    lr, _, _ = degrade.degrade_seeds(
        hr[None].float().div(255).expand(4, -1, -1, -1), [10, 11, 12, 13], 4
    )
    for index in range(4):
        written = np.asarray(Image.open(out / f"lr_{index:02d}.png"))
        expected = (lr[index] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        assert written.shape == (8, 8, 3)
        assert np.abs(written.astype(int) - expected).max() <= 1


def test_a_bad_key_is_one_error_line(tmp_path: Path, capsys) -> None:
    assert main([str(_image(tmp_path)), "--out", str(tmp_path / "o"), "first.nois=3"]) == 1
    assert "data.degradation.first has unknown key(s) ['nois']" in capsys.readouterr().err


def test_it_runs_as_a_module(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "srlab.data.degrade", str(_image(tmp_path)),
               "--out", str(tmp_path / "m"), "--samples", "2", "--crop", "16"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "m" / "grid.png").is_file()

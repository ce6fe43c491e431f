"""Bad images are found before training, each named; on_bad_image=skip trains on the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config
from PIL import Image

from srlab.app.train import train
from srlab.data import SRDataModule
from srlab.errors import DataError, DatasetNotFoundError


def _png(path: Path, height: int, width: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """HR/LR x2 folders with four good pairs and one of each kind of bad file."""
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    for index in range(4):
        _png(hr / f"good{index}.png", 64, 64, index)
        _png(lr / f"good{index}.png", 32, 32, index)
    _png(hr / "truncated.png", 64, 64)
    (hr / "truncated.png").write_bytes((hr / "truncated.png").read_bytes()[:200])
    _png(lr / "truncated.png", 32, 32)
    (hr / "empty.png").write_bytes(b"")
    _png(lr / "empty.png", 32, 32)
    (hr / "text.png").write_text("this is not an image\n")
    _png(lr / "text.png", 32, 32)
    _png(hr / "mismatch.png", 64, 64)
    _png(lr / "mismatch.png", 30, 32)
    _png(hr / "small.png", 32, 32)
    _png(lr / "small.png", 16, 16)
    return tmp_path


BAD = ["truncated.png", "empty.png", "text.png", "mismatch.png", "small.png"]


def _datamodule(folder: Path, **kwargs) -> SRDataModule:
    return SRDataModule.from_folder(
        folder / "HR", folder / "LR", scale=2, root=folder,
        val_sets=[{"name": "V", "hr_dir": str(folder / "HR")}], patch_size=48, num_workers=0,
        **kwargs,
    )  # fmt: skip


def test_every_bad_file_is_named_before_training(folder: Path) -> None:
    datamodule = _datamodule(folder, on_bad_image="error")
    with pytest.raises(DataError) as info:
        datamodule.verify()
    message = str(info.value)
    for name in BAD:
        assert name in message, f"{name} not reported:\n{message}"
    assert "on_bad_image=skip" in message


def test_skip_keeps_the_good_images(folder: Path) -> None:
    datamodule = _datamodule(folder, on_bad_image="skip")
    datamodule.verify()
    assert sorted(p.name for p in datamodule.train_pairs()) == [f"good{i}" for i in range(4)]


def test_missing_lr_and_empty_folder_are_named(tmp_path: Path) -> None:
    _png(tmp_path / "HR" / "a.png", 64, 64)
    (tmp_path / "LR").mkdir()
    with pytest.raises(DatasetNotFoundError, match="a.png"):
        _datamodule(tmp_path).verify()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no images"):
        SRDataModule.from_folder(
            tmp_path / "empty", scale=2, root=tmp_path, val_sets=["sample"]
        ).verify()


def test_training_runs_on_the_rest_with_skip(folder: Path, tmp_path: Path) -> None:
    overrides = [
        "debug=fast", "trainer.accelerator=cpu", "logger=csv", "test=false", "data=folder",
        f"data.hr_dir={folder / 'HR'}", f"data.lr_dir={folder / 'LR'}", "data.val_sets=[sample]",
        "data.on_bad_image=skip",
    ]  # fmt: skip
    assert train(compose_config(tmp_path / "run", overrides)) is not None

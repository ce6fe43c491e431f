"""The Real-ESRGAN recipes end to end on a CPU (``debug=fast``, tiny networks, a random VGG):
training on degraded LR with validation and the test of the best checkpoint, and the paired
fine-tuning of the same GAN recipe on LR/HR folders with the degradation off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_NETS, compose_config
from hydra.utils import instantiate
from PIL import Image

from srlab.app.train import train

REAL_GAN = [
    *TINY_NETS["rrdb"],
    "model.discriminator.num_feat=8",
    "model.loss.perceptual.weights=null",
    "model.loss.perceptual.allow_random_weights=true",
    "model.loss.perceptual.layers=[conv1_1]",
    "model.loss.perceptual.layer_weights=null",
]


def _fast(data_root: Path, *extra: str) -> list[str]:
    return ["experiment=realesrgan_x4plus", "debug=fast", "trainer.accelerator=cpu",
            "logger=csv", f"paths.data_dir={data_root}", *REAL_GAN, *extra]  # fmt: skip


@pytest.fixture(scope="module")
def data_root(shared_data: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "DIV2K").mkdir()
    (root / "DIV2K" / "DIV2K_train_HR").symlink_to(shared_data / "train/DIV2K_train_subset/HR")
    (root / "Set5").symlink_to(shared_data / "benchmarks" / "Set5")
    (root / "Set14").symlink_to(shared_data / "benchmarks" / "Set14")
    return root


def test_realesrgan_x4plus_debug_fast_runs_end_to_end(data_root: Path, tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, _fast(data_root))
    assert cfg.data.degradation.name == "realesrgan"
    assert cfg.model.discriminator._target_.endswith("UNetDiscriminatorSN")
    train(cfg)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["status"] == "finished", record
    assert (tmp_path / "images" / "val" / "step_0000004" / "train_degraded.png").is_file()
    assert (tmp_path / "images" / "val" / "step_0000004" / "train_degraded.csv").is_file()
    assert list((tmp_path / "checkpoints").glob("best_*.ckpt"))


def _pairs(folder: Path, shared_data: Path) -> tuple[Path, Path]:
    hr_dir, lr_dir = folder / "HR", folder / "LR"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir()
    for name in ("baby", "bird"):
        hr = Image.open(shared_data / "benchmarks" / "Set5" / "HR" / f"{name}.png").convert("RGB")
        hr = hr.crop((0, 0, 96, 96))
        hr.save(hr_dir / f"{name}.png")
        # A real LR would come from a camera; any LR of HR / 4 pixels pairs with it.
        lr = np.asarray(hr.resize((24, 24), Image.BOX))
        Image.fromarray(lr).save(lr_dir / f"{name}.png")
    return hr_dir, lr_dir


def test_paired_fine_tuning_trains_on_the_lr_files(
    data_root: Path, shared_data: Path, tmp_path: Path
) -> None:
    hr_dir, lr_dir = _pairs(tmp_path / "pairs", shared_data)
    overrides = _fast(data_root, "data=folder", f"data.hr_dir={hr_dir}", f"data.lr_dir={lr_dir}",
                      "~data/degradation", "test=false")  # fmt: skip
    cfg = compose_config(tmp_path / "run", overrides)
    assert "degradation" not in cfg.data and cfg.model.discriminator._target_.endswith("SN")
    datamodule = instantiate(cfg.data)
    datamodule.verify()
    assert datamodule.degradation is None
    assert [p.lr for p in datamodule.train_pairs()] == [lr_dir / "baby.png", lr_dir / "bird.png"]
    train(cfg)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["status"] == "finished", record
    assert not list((tmp_path / "run" / "images" / "val").glob("*/train_degraded.png"))

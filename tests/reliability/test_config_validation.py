"""Config mistakes fail before anything is built, in one line that names the key.

A typo in a model, data or trainer key (also of ``data=folder``, built by a classmethod), a
value of the wrong type or range, a checkpoint that is not one, a file given as a folder, a
scale the network cannot upsample by, and a training set too small for one batch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from srlab.app.train import train
from srlab.errors import ConfigError, SRLabError
from srlab.runtime.config_check import accepted_keys
from srlab.tasks import RegressionTask


@pytest.mark.parametrize(
    ("override", "named", "valid"),
    [
        ("+model.optimizer.learning_rate=0.1", "model.optimizer.learning_rate", "lr"),
        ("+model.max_nonfinite_step=3", "model.max_nonfinite_step", "max_nonfinite_steps"),
        ("+model.net.net.num_blocks=3", "model.net.net.num_blocks", "num_block"),
        ("+data.batchsize=4", "data.batchsize", "batch_size"),
        ("+trainer.max_step=4", "trainer.max_step", "max_steps"),
        # data=folder is built by SRDataModule.from_folder(hr_dir, lr_dir, **kwargs).
        ("data=folder +data.batchsize=4", "data.batchsize", "batch_size"),
    ],
)
def test_unknown_key_is_named_with_the_valid_ones(
    tmp_path: Path, override: str, named: str, valid: str
) -> None:
    overrides = (
        [*override.split(), f"data.hr_dir={tmp_path}"] if "folder" in override else [override]
    )
    cfg = compose_config(tmp_path, ["debug=fast", *overrides])
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert named in str(info.value) and valid in str(info.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing was built or trained


def test_task_keys_follow_forwarded_kwargs_to_the_base_task() -> None:
    keys = accepted_keys(RegressionTask)
    assert {"loss", "optimizer", "pretrained", "max_nonfinite_steps", "net"} <= keys


def _photos(folder: Path, count: int, side: int = 64) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    return folder


def _bad_checkpoint(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.ckpt"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:  # a real checkpoint cut short, as a copy to a full disk leaves it
        torch.save({"global_step": 3, "state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:1500])
    return path


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.batch_size=abc", "data.batch_size='abc' must be an int"),
        ("scale=0", "scale=0 must be at least 1"),
        ("scale=-2", "scale=-2 must be at least 1"),
        ("data.patch_size=0", "data.patch_size=0 must be at least 1"),
        ("data.patch_size=1", "data.patch_size=1 is smaller than scale=2"),
        ("model.optimizer.lr=-1e-4", "model.optimizer.lr=-0.0001 must be at least 0"),
        ("trainer.max_steps=1.5", "trainer.max_steps=1.5 must be an int"),
        ("ckpt_path=<text>", "cannot read"),
        ("ckpt_path=<empty>", "cannot read"),
        ("ckpt_path=<truncated>", "cannot read"),
        ("data.hr_dir=<file>", "is a file, not a folder"),
        ("scale=5", "Upsample: unsupported scale 5"),
    ],
)
def test_impossible_values_are_one_line_before_anything_is_built(
    tmp_path: Path, override: str, named: str
) -> None:
    key, value = override.split("=", 1)
    overrides = ["debug=fast", "logger=csv", f"data.cache_dir={tmp_path / 'cache'}"]
    if value.startswith("<") and key == "ckpt_path":
        value = str(_bad_checkpoint(tmp_path, value.strip("<>")))
    if key == "data.hr_dir":
        _photos(tmp_path / "photos", 1)
        overrides += ["data=folder", "data.val_sets=[sample]"]
        value = str(tmp_path / "photos" / "0.png")
    cfg = compose_config(tmp_path / "run", [*overrides, f"{key}={value}"])
    with pytest.raises(SRLabError) as info:
        train(cfg)
    message = str(info.value)
    assert named in message, message
    assert "\n" not in message or key == "data.hr_dir"  # a missing set also shows its layout
    assert not (tmp_path / "run" / "checkpoints").exists()
    # Nothing was decoded for a scale the network cannot train (scale=5 built an x5 cache).
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_an_epoch_without_a_full_batch_is_a_config_error(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 6)
    overrides = [
        "debug=fast", "logger=csv", "data=folder", f"data.hr_dir={photos}",
        "data.val_sets=[sample]", "data.batch_size=16", "data.cache=false",
    ]  # fmt: skip
    with pytest.raises(ConfigError) as info:
        train(compose_config(tmp_path / "run", overrides))
    message = str(info.value)
    assert "data.batch_size=16" in message and "6 patches per epoch" in message
    assert "data.repeat=3" in message  # how to fix it
    assert not (tmp_path / "run" / "run.json").exists()  # no run left "running"


def test_value_checks_import_no_torch() -> None:
    # So that an entry point can check values before its heavy imports.
    code = (
        "import sys; import srlab.runtime.config_check as c; "
        "from omegaconf import OmegaConf; "
        "c.check_values(OmegaConf.create({'scale': 2, 'data': {'batch_size': 4}})); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr

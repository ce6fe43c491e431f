"""Every config of every group composes, and the objects it names can be built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, compose_config
from hydra.utils import instantiate

from srlab.data import SRDataModule
from srlab.errors import DatasetNotFoundError


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# edsr_tiny x2: head 896 + 4 blocks x 2 x 9,248 + body conv 9,248 + upsampler 36,992
# + tail 867 = 121,987.
@pytest.mark.parametrize(
    ("model", "scale", "params"),
    [("edsr_baseline", 2, 1_369_859), ("edsr", 2, 40_729_603), ("edsr_tiny", 2, 121_987)],
)
def test_model_configs_build_with_paper_parameter_counts(
    tmp_path: Path, model: str, scale: int, params: int
) -> None:
    cfg = compose_config(tmp_path, [f"model={model}", f"scale={scale}"])
    task = instantiate(cfg.model, _convert_="all")
    assert task.scale == scale
    assert _params(task.net) == params


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_scale_reaches_model_and_data(tmp_path: Path, scale: int) -> None:
    cfg = compose_config(tmp_path, [f"scale={scale}", "model=edsr_baseline"])
    assert cfg.model.net.upscale == scale and cfg.data.scale == scale


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "debug", "paths", "hydra"])
def test_every_option_composes(tmp_path: Path, group: str) -> None:
    for option in _options(group):
        compose_config(tmp_path, [f"{group}={option}"])


def test_data_configs(tmp_path: Path, shared_data: Path) -> None:
    assert set(_options("data")) >= {"sample", "folder", "div2k", "set5", "set14"}
    benchmarks = shared_data / "benchmarks"
    for option in ("set5", "set14"):
        cfg = compose_config(tmp_path, [f"data={option}", f"paths.data_dir={benchmarks}"])
        datamodule: SRDataModule = instantiate(cfg.data, _convert_="all")
        datamodule.verify()
        assert datamodule.train_sets == []
    hr_dir = shared_data / "train" / "T91" / "HR"
    cfg = compose_config(
        tmp_path,
        [
            "data=folder",
            f"data.hr_dir={hr_dir}",
            f"paths.data_dir={benchmarks}",
            "data.patch_size=33",
        ],
    )
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.verify()
    assert len(datamodule.train_pairs()) == 91


def test_div2k_without_files_fails_with_layout(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["data=div2k", f"paths.data_dir={tmp_path}"])
    datamodule = instantiate(cfg.data, _convert_="all")
    with pytest.raises(DatasetNotFoundError, match="DIV2K_train_HR"):
        datamodule.verify()


REGRESSION_MODELS = ["edsr_tiny", "edsr_baseline", "edsr", "srcnn", "fsrcnn", "vdsr", "rrdb"]
UNSUPPORTED = {("rrdb", 3)}  # RRDBNet upsamples by x2 stages only


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("model", REGRESSION_MODELS)
def test_model_config_odd_sizes_and_one_training_step(
    tmp_path: Path, model: str, scale: int
) -> None:
    cfg = compose_config(tmp_path, [f"model={model}", f"scale={scale}"])
    if (model, scale) in UNSUPPORTED:
        with pytest.raises(Exception, match="scale"):
            instantiate(cfg.model, _convert_="all")
        return
    torch.manual_seed(0)
    task = instantiate(cfg.model, _convert_="all")
    lr = torch.rand(2, 3, 7, 9)  # odd, non-square
    hr = torch.rand(2, 3, 7 * scale, 9 * scale)
    assert task(lr).shape == hr.shape
    task.log = lambda *args, **kwargs: None  # not attached to a Trainer
    optimizer = task.configure_optimizers()["optimizer"]
    before = [p.detach().clone() for p in task.net.parameters()]
    loss = task.training_step({"lr": lr, "hr": hr, "name": ["a", "b"]}, 0)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, task.net.parameters(), strict=True))

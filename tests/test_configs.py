"""Every config of every group composes, and the objects it names can be built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import CONF_DIR, TINY_NETS, compose_config
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


#: Every model config (conf/model/*.yaml but the shared _task.yaml): a new one is tested here
#: with no edit.
MODELS = [name for name in _options("model") if not name.startswith("_")]
# RRDBNet upsamples by x2 stages only; SwinIR's real-world tail is x4 only.
UNSUPPORTED = {("rrdb", 3), ("esrgan", 3), ("swinir_real", 2), ("swinir_real", 3)}


def _small(model: str, cfg) -> list[str]:
    """Overrides that shrink a network's depth (the step, not the architecture, is tested)."""
    if model in TINY_NETS:
        return TINY_NETS[model]
    net = cfg.model.net
    small = [f"model.net.{key}={value}" for key, value in (("num_block", 1), ("num_layers", 3))]
    return [o for o in small if o.split("=")[0].rsplit(".", 1)[1] in net]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("model", MODELS)
def test_model_config_odd_sizes_and_one_training_step(
    tmp_path: Path, model: str, scale: int
) -> None:
    overrides = [f"model={model}", f"scale={scale}"]
    cfg = compose_config(tmp_path, overrides)
    if "_target_" not in cfg.model:  # an evaluation-only network (bicubic)
        net = instantiate(cfg.model.net)
        assert net(torch.rand(1, 3, 7, 9)).shape == (1, 3, 7 * scale, 9 * scale)
        return
    if "discriminator" in cfg.model:  # a GAN: no VGG weights can be downloaded here
        overrides += ["model.loss.perceptual.allow_random_weights=true", "data.patch_size=128"]
    cfg = compose_config(tmp_path, [*overrides, *_small(model, cfg)])
    if (model, scale) in UNSUPPORTED:
        with pytest.raises(Exception, match="scale"):
            instantiate(cfg.model, _convert_="all")
        return
    torch.manual_seed(0)
    task = instantiate(cfg.model, _convert_="all")
    assert task.name == model
    # Odd, non-square; HAT pads to its 16-pixel windows by reflection (> 8 pixels needed), and
    # Omni-SR's ESA shrinks its input by a stride-2 3x3 convolution, then a 7x7 max pool.
    h, w = (17, 19) if model.startswith(("hat", "omnisr")) else (7, 9)
    lr = torch.rand(2, 3, h, w)
    hr = torch.rand(2, 3, h * scale, w * scale)
    assert task(lr).shape == hr.shape
    if task.automatic_optimization is False:  # the GAN task: tests/test_gan.py trains it
        return
    task.log = lambda *args, **kwargs: None  # not attached to a Trainer
    optimizer = task.configure_optimizers()["optimizer"]
    before = [p.detach().clone() for p in task.net.parameters()]
    loss = task.training_step({"lr": lr, "hr": hr, "name": ["a", "b"]}, 0)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, task.net.parameters(), strict=True))


def test_training_an_evaluation_only_network_says_to_evaluate_it(tmp_path: Path) -> None:
    from srlab.app.train import build
    from srlab.errors import ConfigError

    with pytest.raises(ConfigError, match="python src/eval.py model=bicubic"):
        build(compose_config(tmp_path, ["model=bicubic", "debug=fast"]), prepare=False)

"""Precision, channels-last and torch.compile through the real configs: the first training
step's loss (and, for the regression task, the validation PSNR after it) agrees with plain
fp32 within what each setting can promise, for the regression and the GAN task.

Every run is one step of a tiny network from the same seed, so runs see the same initial
weights and the same first batch. On CPU, Lightning 2.6 turns ``trainer.precision=16-mixed``
into ``bf16-mixed`` (with a warning: PyTorch has no fp16 autocast for CPU convolutions).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging

from srlab.errors import ConfigError
from srlab.tasks import SRTask
from srlab.weights import load_pretrained

# One training step, then one validation image.
ONE_STEP = [
    "debug=fast",
    "logger=none",
    "trainer.accelerator=cpu",
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "trainer.limit_val_batches=1",
]
# EDSR-baseline at a small size: the compiled graph is the network's alone.
REGRESSION = ["model=edsr_baseline", "model.net.num_feat=8", "model.net.num_block=1"]
# Both networks, pixel and adversarial terms from the first step; no perceptual VGG (its
# convolutions are slow in bf16 on a CPU) and no validation (whole-image scoring is SRTask's,
# checked on the regression task).
GAN = [
    "experiment=esrgan_smoke",
    "model.g_steps_before_d=0",
    "model.d_warmup_steps=0",
    "model.loss.perceptual=null",
    "model.loss_weights.perceptual=0",
    "data.patch_size=128",
    "trainer.limit_val_batches=0",
]
GAN_LOSSES = ("train/g_loss", "train/g_pixel", "train/g_adv", "train/d_loss")

# Relative tolerances. bf16 keeps 8 significant bits: a step's loss moves by ~0.1-1 %.
# Channels-last and compiled kernels sum in another order: float32 rounding only.
BF16_RTOL = 2e-2
EXACT_RTOL = 1e-5


@pytest.fixture(scope="session")
def small_val_set(tmp_path_factory) -> str:
    """An override for a one-image evaluation set, a 96 x 120 crop of a photo: scoring the
    sample set's 512 x 512 photos in bf16 would dominate these tests on a CPU."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("crop") / "HR"
    folder.mkdir()
    Image.fromarray(data.astronaut()[40:136, 180:300]).save(folder / "astronaut.png")
    return f"data.val_sets=[{{name: Crop, hr_dir: '{folder}'}}]"


def run_one_step(
    tmp_path: Path, overrides: list[str], callbacks=()
) -> tuple[dict, SRTask, L.Trainer]:
    """Fit one step from the composed config; returns the logged metrics, task and trainer."""
    cfg = compose_config(tmp_path, [*ONE_STEP, *overrides])
    L.seed_everything(cfg.seed)
    datamodule = instantiate(cfg.data, _convert_="all")
    task = instantiate(cfg.model, _convert_="all")
    trainer = instantiate(
        cfg.trainer,
        logger=False,
        callbacks=list(callbacks),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=datamodule)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    return metrics, task, trainer


@pytest.fixture(scope="session")
def regression(small_val_set: str) -> list[str]:
    """Overrides of the regression runs: the tiny EDSR, validated on the small set."""
    return [*REGRESSION, small_val_set]


@pytest.fixture(scope="module")
def fp32_regression(tmp_path_factory, regression: list[str]) -> dict:
    """The reference: the regression task's first step in fp32, eager, NCHW."""
    return run_one_step(tmp_path_factory.mktemp("fp32"), regression)[0]


@pytest.fixture(scope="module")
def fp32_gan(tmp_path_factory) -> dict:
    """The reference: the GAN task's first step in fp32, eager, NCHW."""
    return run_one_step(tmp_path_factory.mktemp("fp32_gan"), GAN)[0]


def assert_close(got: dict, want: dict, keys, rtol: float) -> None:
    for key in keys:
        assert got[key] == pytest.approx(want[key], rel=rtol), key


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_step_and_validation_match_fp32(
    tmp_path: Path, regression: list[str], fp32_regression: dict, precision: str, monkeypatch
) -> None:
    # As on an AVX2 CPU, where bf16 convolutions are slow: the run says so.
    monkeypatch.setattr("srlab.tracking.throughput.cpu_has_fast_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without fast bfloat16 kernels"):
        metrics, task, trainer = run_one_step(
            tmp_path, [*regression, f"trainer.precision={precision}"]
        )
    # 16-mixed on CPU is bf16 autocast (Lightning's fallback); on CUDA it is fp16.
    assert trainer.precision == "bf16-mixed"
    # Autocast really ran (the loss moved), and by no more than bf16 rounding.
    assert metrics["train/loss"] != fp32_regression["train/loss"]
    assert_close(metrics, fp32_regression, ["train/loss"], BF16_RTOL)
    # Scored in float32 against a float32 bicubic: within 0.05 dB.
    assert metrics["val/psnr"] == pytest.approx(fp32_regression["val/psnr"], abs=0.05)
    assert metrics["val/Crop/psnr_bicubic"] == pytest.approx(
        fp32_regression["val/Crop/psnr_bicubic"], abs=1e-9
    )


def test_channels_last_step_and_validation_match_fp32(
    tmp_path: Path, regression: list[str], fp32_regression: dict
) -> None:
    metrics, task, _ = run_one_step(tmp_path, [*regression, "model.channels_last=true"])
    conv = task.net.conv_first.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert_close(metrics, fp32_regression, ["train/loss", "val/psnr"], EXACT_RTOL)


def test_gan_mixed_precision_step_matches_fp32(tmp_path: Path, fp32_gan: dict) -> None:
    metrics, _, _ = run_one_step(tmp_path, [*GAN, "trainer.precision=bf16-mixed"])
    assert metrics["train/g_loss"] != fp32_gan["train/g_loss"]
    assert_close(metrics, fp32_gan, GAN_LOSSES, BF16_RTOL)


def test_gan_channels_last_step_matches_fp32(tmp_path: Path, fp32_gan: dict) -> None:
    metrics, task, _ = run_one_step(tmp_path, [*GAN, "model.channels_last=true"])
    for module in (task.net, task.discriminator):
        weight = next(p for p in module.parameters() if p.dim() == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last)
    assert_close(metrics, fp32_gan, GAN_LOSSES, EXACT_RTOL)


def test_compiled_channels_last_run_matches_fp32_and_its_checkpoint_loads_plainly(
    tmp_path: Path, regression: list[str], fp32_regression: dict
) -> None:
    """The one compile test of the default suite (10-25 s with a cold compiler cache): the
    fastest setting, with EMA, gives the fp32 loss; its checkpoint has plain names and loads
    into an uncompiled network."""
    ema = EMAWeightAveraging(decay=0.9)
    metrics, task, trainer = run_one_step(
        tmp_path,
        [*regression, "model.channels_last=true", "model.compile=true"],
        callbacks=[ema],
    )
    assert task.net._compiled_call_impl is not None  # nn.Module.compile, in place
    assert_close(metrics, fp32_regression, ["train/loss"], EXACT_RTOL)
    assert metrics["val/psnr"] == pytest.approx(fp32_regression["val/psnr"], abs=0.05)

    path = tmp_path / "compiled.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    for state in (checkpoint["state_dict"], checkpoint["current_model_state"]):  # EMA, live
        assert "net.conv_first.weight" in state
        assert not any("_orig_mod" in key for key in state)
    cfg = compose_config(tmp_path, REGRESSION)
    plain = instantiate(cfg.model.net)
    load_pretrained(plain, path)  # the EMA weights, strictly
    torch.testing.assert_close(plain.state_dict(), task.net.state_dict(), rtol=0, atol=0)


@pytest.mark.slow  # reason: a cold torch.compile of the generator costs 20-100 s on 2 cores
def test_gan_compiled_step_matches_fp32(tmp_path: Path, fp32_gan: dict) -> None:
    metrics, task, _ = run_one_step(tmp_path, [*GAN, "model.compile=true"])
    assert task.net._compiled_call_impl is not None
    assert_close(metrics, fp32_gan, GAN_LOSSES, EXACT_RTOL)


def test_unknown_compile_mode_names_the_key_and_the_modes(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, [*REGRESSION, "model.compile_mode=fastest"])
    with pytest.raises(Exception) as info:
        instantiate(cfg.model, _convert_="all")
    cause = info.value if isinstance(info.value, ConfigError) else info.value.__cause__
    assert isinstance(cause, ConfigError)
    assert "model.compile_mode='fastest'" in str(cause) and "max-autotune" in str(cause)

"""Gradient accumulation (``trainer.accumulate_grad_batches``): N batches of B patches train
as one batch of N x B, for the regression task (Lightning's automatic optimization) and the
GAN task (its own, under manual optimization), with clipping and 16-mixed loss scaling."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import compose_config
from hydra.utils import instantiate
from lightning.pytorch.plugins import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader

PATCHES = 4  # HR patches in the data: two updates of 2, with or without accumulation
SGD = ["model.optimizer._target_=torch.optim.SGD", "~model.optimizer.betas"]
SGD_D = ["model.optimizer_d._target_=torch.optim.SGD", "~model.optimizer_d.betas"]


class Patches(L.LightningDataModule):
    """``PATCHES`` fixed HR patches and their LR (box-downscaled), in order, ``batch_size`` at a
    time: every run sees the same patches in the same order."""

    val_set_names: list[str] = []
    test_set_names: list[str] = []

    def __init__(self, batch_size: int, scale: int, patch: int) -> None:
        super().__init__()
        hr = torch.rand(PATCHES, 3, patch, patch, generator=torch.Generator().manual_seed(0))
        lr = F.avg_pool2d(hr, scale)
        self.items = [{"lr": lr[i], "hr": hr[i], "name": f"p{i}"} for i in range(PATCHES)]
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=self.batch_size, shuffle=False)


class PlainDiscriminator(nn.Module):
    """A discriminator without batch statistics (the VGG-style one has batch norm, which sees
    B patches at a time under accumulation and N x B in one batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 3, 2, 1)
        )
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def flat_weights(task: L.LightningModule) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in task.parameters() if p.requires_grad])


def train_updates(
    task: L.LightningModule,
    data: Patches,
    accumulate: int,
    precision: str = "32-true",
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, L.Trainer]:
    """Fit ``task`` on one epoch of ``data``; return how its weights moved, and the trainer."""
    before = flat_weights(task)
    options = {"plugins": [MixedPrecision(precision, "cpu", scaler)]} if scaler else {}
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        accumulate_grad_batches=accumulate,
        precision=None if scaler else precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=True,
        **options,
    )
    trainer.fit(task, datamodule=data)
    return flat_weights(task) - before, trainer


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_regression_accumulates_like_one_large_batch(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, [*SGD, "~model.optimizer.eps", "model.optimizer.lr=0.5"])

    def run(batch_size: int, accumulate: int) -> tuple[torch.Tensor, L.Trainer]:
        torch.manual_seed(0)
        task = instantiate(cfg.model, _convert_="all")
        return train_updates(task, Patches(batch_size, cfg.scale, 32), accumulate)

    large, large_trainer = run(batch_size=2, accumulate=1)
    small, small_trainer = run(batch_size=1, accumulate=2)
    assert large_trainer.global_step == small_trainer.global_step == 2
    assert relative_error(small, large) < 1e-5
    unaccumulated, _ = run(batch_size=1, accumulate=1)  # what the check tells apart
    assert relative_error(unaccumulated, large) > 1e-2


# Each GAN case: precision, its loss scaler, extra overrides, and the tolerance on the
# relative difference of the weight updates. Clipping at 1e-3 binds (the gradients are far
# larger), so only the direction of the summed gradients counts, and the updates are so small
# that float32 rounding of the weights shows; without clipping the division by N counts too.
GAN_CASES = {
    "fp32": ("32-true", None, [], 1e-5),
    "fp32-clipped": ("32-true", None, ["model.grad_clip=1e-3", "model.grad_clip_d=1e-3"], 1e-3),
    # growth_interval=1 doubles the scale at every update: the generator's, in the last batch
    # of a window, moves it before the discriminator's last backward. float16 autocast
    # rounds differently in batches of 1 and of 2.
    "fp16-scaled": ("16-mixed", dict(init_scale=2.0**8, growth_interval=1), [], 2e-3),
}


@pytest.mark.parametrize("case", list(GAN_CASES))
def test_gan_accumulates_like_one_large_batch(tmp_path: Path, case: str) -> None:
    precision, scaler_options, extra, tolerance = GAN_CASES[case]
    cfg = compose_config(
        tmp_path,
        [
            "experiment=esrgan_smoke",
            # The pixel and adversarial terms are means over the batch, as the perceptual one
            # is; leaving that out saves building a VGG19 (seconds on a CPU).
            "model.loss.perceptual=null",
            "model.loss_weights.perceptual=0",
            "model.g_steps_before_d=0",
            "model.d_warmup_steps=0",
            # RaGAN's loss compares each output with the batch's mean: not a sum over patches.
            "model.loss.adversarial.gan_type=vanilla",
            *SGD,
            *SGD_D,
            "model.optimizer.lr=0.1",
            "model.optimizer_d.lr=0.1",
            *extra,
        ],
    )

    torch.manual_seed(0)
    start = instantiate(cfg.model, _convert_="all")
    start.discriminator = PlainDiscriminator()

    def run(batch_size: int, accumulate: int) -> tuple[torch.Tensor, L.Trainer]:
        task = copy.deepcopy(start)
        scaler = torch.amp.GradScaler("cpu", **scaler_options) if scaler_options else None
        data = Patches(batch_size, cfg.scale, 32)
        return train_updates(task, data, accumulate, precision, scaler)

    large, large_trainer = run(batch_size=2, accumulate=1)
    small, small_trainer = run(batch_size=1, accumulate=2)
    assert large_trainer.global_step == small_trainer.global_step == 2  # updates, not batches
    g_sched, d_sched = (c.scheduler for c in small_trainer.lr_scheduler_configs)
    assert g_sched.last_epoch == d_sched.last_epoch == 2
    assert relative_error(small, large) < tolerance
    if case == "fp32":  # that the check tells accumulation from its absence
        unaccumulated, _ = run(batch_size=1, accumulate=1)
        assert relative_error(unaccumulated, large) > 10 * tolerance

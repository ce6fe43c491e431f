"""Regression training: a pixel loss between SR and HR, automatic optimization."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srlab.tasks.base import SRTask


class RegressionTask(SRTask):
    """Trains an SR network by minimizing a pixel loss (L1 by default, as EDSR).

    Validation, test, metrics and image logging come from :class:`SRTask`.

    Args:
        net: the SR network (``model.net``).
        loss: the pixel loss module (``torch.nn.L1Loss``, ``MSELoss``,
            ``srlab.losses.CharbonnierLoss``).
        optimizer: a partial optimizer (``_partial_: true``) called with the parameters.
        scheduler: a partial LR scheduler called with the optimizer, or None.
        scheduler_interval: ``step`` (per iteration, as SR papers count) or ``epoch``.
        num_log_images: comparison images per evaluation set at each validation.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "step",
        num_log_images: int = 3,
    ) -> None:
        super().__init__(net, num_log_images=num_log_images)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """One optimization step on a batch of (LR, HR) patches."""
        sr = self(batch["lr"])
        loss = self.loss(sr, batch["hr"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["lr"].shape[0])
        return loss

    def configure_optimizers(self) -> dict:
        """The optimizer over the network's parameters, and the scheduler if configured."""
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
        }

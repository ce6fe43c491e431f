"""Regression training: a pixel loss between SR and HR, automatic optimization."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from srlab.models.channels import training_channels
from srlab.tasks.base import SRTask
from srlab.tasks.optim import build_optimizer


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
        adjustable_clip: VDSR's adjustable gradient clipping: every gradient is clipped to
            ``[-theta / lr, theta / lr]`` with the current learning rate ``lr``, so that large
            learning rates stay stable (Kim et al. 2016, section 3.3); None disables it
            (``trainer.gradient_clip_val`` still applies).
        num_log_images: comparison images per evaluation set at each validation.
        **task_kwargs: the other arguments of :class:`SRTask`: weights to start from
            (``pretrained``, ``pretrained_ignore``, ``pretrained_strict``,
            ``pretrained_sha256``), ``max_nonfinite_steps``, and the speed settings
            ``channels_last``, ``compile``, ``compile_mode``.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "step",
        adjustable_clip: float | None = None,
        num_log_images: int = 3,
        **task_kwargs: Any,
    ) -> None:
        super().__init__(net, num_log_images=num_log_images, **task_kwargs)
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.adjustable_clip = adjustable_clip
        self._skip_update = False

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        """One optimization step on a batch of (LR, HR) patches (skipped if the loss is not
        finite)."""
        lr, hr = training_channels(self.net, batch["lr"], batch["hr"])
        # Multi-scale batches (data.train_scales) carry their scale: one per batch.
        scale = int(batch["scale"][0]) if "scale" in batch else None
        loss = self.loss(self(lr, scale), hr)
        if not self.is_finite_step(loss):
            if self.world_size == 1:
                return None  # Lightning skips the backward and the update
            # DDP refuses None (ranks must all reduce gradients): every rank (they agree, see
            # all_finite) backpropagates zeros, and optimizer_step skips the update.
            self._skip_update = True
            return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["lr"].shape[0])
        return loss

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Callable[[], Any] | None = None,
    ) -> None:
        """Step as Lightning does, except after a non-finite loss under DDP: no update then
        (zero gradients would still move Adam's weights through its momentum)."""
        if self.world_size == 1 or optimizer_closure is None:
            super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
            return
        loss = optimizer_closure()  # training_step and backward
        if self._skip_update:
            self._skip_update = False
            return
        optimizer.step(closure=lambda: loss)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip by ``trainer.gradient_clip_val``, then by VDSR's ``theta / lr`` if configured."""
        if gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        if self.adjustable_clip is not None:
            # Clip each group by its own lr (groups with lr multipliers move more slowly).
            for group in optimizer.param_groups:
                bound = self.adjustable_clip / group["lr"]
                torch.nn.utils.clip_grad_value_(group["params"], bound)

    def configure_optimizers(self) -> dict:
        """The optimizer over the network's parameters, and the scheduler if configured."""
        optimizer, scheduler = build_optimizer(
            self.net,
            self.optimizer_factory,
            self.scheduler_factory,
            interval=self.scheduler_interval,
        )
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

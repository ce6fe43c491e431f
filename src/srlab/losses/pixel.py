"""Pixel-wise losses. L1 and MSE are ``torch.nn.L1Loss`` / ``torch.nn.MSELoss``, used as they
are; only the Charbonnier loss, which PyTorch lacks, is defined here."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CharbonnierLoss"]

_REDUCTIONS = ("mean", "sum", "none")


class CharbonnierLoss(nn.Module):
    r"""Charbonnier loss, a differentiable variant of L1.

    .. math:: \ell(x, y) = \sqrt{(x - y)^2 + \varepsilon^2}

    From Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution"
    (LapSRN, CVPR 2017). For ``|x - y| >> eps`` it equals L1 (within ``eps``); near zero it is
    quadratic, so its gradient ``(x - y) / sqrt((x - y)^2 + eps^2)`` is finite and continuous
    where L1's jumps. Note ``eps`` is squared inside the root (LapSRN's convention); BasicSR's
    ``eps=1e-12`` is added unsquared, i.e. corresponds to ``eps=1e-6`` here.

    Shapes: ``input`` and ``target`` of the same shape; the output is a scalar for
    ``reduction="mean"``/``"sum"`` and the input's shape for ``"none"``.

    Args:
        eps: Smoothing constant, in the units of the images (1e-3 for ``[0, 1]`` images).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, as in ``torch.nn`` losses.

    Example:
        >>> loss = CharbonnierLoss(eps=1e-3)
        >>> round(loss(torch.tensor([0.0, 0.5]), torch.tensor([0.0, 0.0])).item(), 4)
        0.2505
    """

    def __init__(self, eps: float = 1e-3, reduction: str = "mean") -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"CharbonnierLoss eps must be > 0, got {eps!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(
                f"CharbonnierLoss reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        self.eps = eps
        self.reduction = reduction

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the reduced ``sqrt((input - target)**2 + eps**2)``."""
        if input.shape != target.shape:
            # Broadcasting a [B,C,H,W] SR against a mis-cropped HR would silently train on junk.
            raise ValueError(
                f"CharbonnierLoss: input shape {tuple(input.shape)} != "
                f"target shape {tuple(target.shape)}"
            )
        diff = input - target
        if diff.dtype in (torch.float16, torch.bfloat16):
            # eps**2 = 1e-6 is subnormal in fp16 and coarse in bf16; the loss is cheap in fp32.
            diff = diff.float()
        loss = torch.sqrt(diff * diff + self.eps**2)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        """Show ``eps`` and ``reduction`` in ``print(model)``."""
        return f"eps={self.eps}, reduction={self.reduction!r}"

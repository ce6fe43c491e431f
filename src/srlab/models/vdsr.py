"""VDSR of Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
Networks", CVPR 2016."""

from __future__ import annotations

import torch
from torch import nn

from srlab.models.common import bicubic_upscale, check_upscale

__all__ = ["VDSR"]


class VDSR(nn.Module):
    """Very Deep Super-Resolution network (VDSR).

    Kim, Lee and Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional
    Networks", CVPR 2016, https://arxiv.org/abs/1511.04587.

    Architecture: ``x = bicubic(lr)`` (MATLAB bicubic upscale, done here inside ``forward`` so
    that VDSR maps LR to SR like every srlab network), then the global residual
    ``out = x + body(x)``, where ``body`` is one ``nn.Sequential`` of ``num_layers`` 3x3 convs
    with zero padding 1 ('same') and biases: ``conv (C -> num_feat)`` + ReLU,
    ``num_layers - 2`` times ``conv (num_feat -> num_feat)`` + ReLU, ``conv (num_feat -> C)``.
    ``body`` holds nothing but these convs and ReLUs, so ``list(net.parameters())`` is
    ``[w1, b1, w2, b2, ..., w_L, b_L]`` in depth order: the authors' (weight, bias) pairs map
    onto it one to one (``body.{0, 2, ..., 2L-2}.weight`` / ``.bias`` in the state dict).

    One network serves every scale (the paper's multi-scale model, trained on x2, x3 and x4
    at once): ``forward(lr, scale=k)`` upscales by any positive integer ``k`` for that call,
    and ``self.upscale`` is only the default when ``scale`` is not given.

    Initialization (the paper, Sec. 5.2: He et al.'s method): weights zero-mean Gaussian with
    std ``sqrt(2 / (9 * out_channels))`` (``kaiming_normal_``, ``mode="fan_out"``), biases 0.
    Fan-out keeps the variance of the gradients constant through the depth, the quantity He et
    al. derive the init from for the backward pass; fan-in and fan-out agree on every 64 -> 64
    layer and differ only at the first (C -> 64) and last (64 -> C) convs, whose ratios cancel,
    so the forward gain of the whole body is the same either way. It is also what the widely
    used twtygqyy/pytorch-vdsr port does.

    Training (Sec. 3.2) uses very high learning rates (0.1) made stable by *adjustable*
    gradient clipping: each gradient is clipped to ``[-theta / lr, theta / lr]`` with the
    current learning rate ``lr``; that belongs to the training task, not to this module.

    Parameter count, with ``C = num_in_ch``, ``F = num_feat``, ``L = num_layers``: weights
    ``9 C F + (L - 2) 9 F² + 9 F C``; biases ``(L - 1) F + C``. The paper's 20-layer, 64-wide
    network on Y: 664,704 weights + 1,217 biases = 665,921 parameters.

    Shapes: input ``[B, num_in_ch, h, w]`` in ``[0, 1]``, any ``h, w >= 1``; output
    ``[B, num_in_ch, k * h, k * w]`` with ``k = scale or self.upscale``, not clamped.

    Args:
        num_in_ch: Channels of the input and output: 1 (the Y channel, the paper's setting) or
            3 (RGB). The global residual needs the output to have the input's channels.
        num_feat: Channels of every hidden layer (paper: 64).
        num_layers: Number of conv layers, the depth ``d`` of the paper (20; at least 2).
        upscale: Default integer upscaling factor (>= 1) of ``forward``. Exposed as
            ``self.upscale``, which the tasks read.

    Raises:
        ValueError: For a non-positive or non-integer ``upscale`` (or ``scale`` in
            ``forward``), or ``num_layers < 2``.

    Example:
        >>> net = VDSR(upscale=2)
        >>> lr = torch.rand(1, 1, 5, 7)
        >>> net(lr).shape, net(lr, scale=3).shape
        (torch.Size([1, 1, 10, 14]), torch.Size([1, 1, 15, 21]))
    """

    def __init__(
        self, num_in_ch: int = 1, num_feat: int = 64, num_layers: int = 20, upscale: int = 2
    ) -> None:
        super().__init__()
        check_upscale(upscale, "VDSR")
        if num_layers < 2:
            raise ValueError(f"VDSR: num_layers must be >= 2, got {num_layers!r}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_in_ch
        self.upscale = upscale
        # Tells the task and the data module that forward(lr, scale=k) works for any k, so
        # that one model can train on several scales (data.train_scales).
        self.any_scale = True

        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(True)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.ReLU(True)]
        layers.append(nn.Conv2d(num_feat, num_in_ch, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialize as the paper: He-normal (fan-out) weights, zero biases."""
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """Super-resolve ``lr`` ``[B, C, h, w]`` to ``[B, C, k*h, k*w]``, ``k = scale`` if given,
        else ``self.upscale``."""
        if scale is None:
            scale = self.upscale
        else:
            check_upscale(scale, "VDSR.forward")
        x = bicubic_upscale(lr, scale)
        return x + self.body(x)

"""Global residual learning over the MATLAB-bicubic upscale, for any network."""

from __future__ import annotations

import torch
from torch import nn

from srlab.models.common import bicubic_upscale


class BicubicResidual(nn.Module):
    """``SR = bicubic(LR) + net(LR)``: the wrapped network predicts only the missing detail.

    Global residual learning as in VDSR (Kim et al., CVPR 2016), here around a network that
    upsamples by itself (any srlab network), so it trains fast: at initialization the output
    is close to the bicubic baseline, and every step refines it.

    Args:
        net: an SR network with attributes ``upscale`` and ``num_in_ch``; its output should be
            zero-centred (e.g. EDSR with ``rgb_mean: null``).
        zero_init_last: zero the weights and bias of the network's last ``Conv2d`` (its output
            layer in srlab's networks), so that training starts exactly at the bicubic
            baseline instead of bicubic plus the noise of a random network.
    """

    def __init__(self, net: nn.Module, zero_init_last: bool = True) -> None:
        super().__init__()
        self.net = net
        self.upscale = net.upscale
        self.num_in_ch = getattr(net, "num_in_ch", 3)
        if zero_init_last:
            convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
            if not convs:
                raise ValueError(f"{type(net).__name__} has no Conv2d to zero-initialize")
            nn.init.zeros_(convs[-1].weight)
            if convs[-1].bias is not None:
                nn.init.zeros_(convs[-1].bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Bicubic upscale of ``lr`` [B, C, h, w] plus the network's residual."""
        return bicubic_upscale(lr, self.upscale) + self.net(lr)

"""The interpolation baseline as a network: MATLAB-bicubic upscaling, no weights."""

from __future__ import annotations

import torch
from torch import nn

from srlab.models.common import bicubic_upscale, check_upscale


class Bicubic(nn.Module):
    """MATLAB ``imresize(lr, s, 'bicubic')``: the baseline row of every SR table.

    Has no parameters; evaluating it (``python src/eval.py model=bicubic``) reproduces the
    literature's bicubic numbers.

    Args:
        upscale: the integer upscaling factor.
        num_in_ch: channels it is given (any; the upscale works per channel).
    """

    def __init__(self, upscale: int = 4, num_in_ch: int = 3) -> None:
        super().__init__()
        check_upscale(upscale, "Bicubic")
        self.upscale = upscale
        self.num_in_ch = num_in_ch

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Upscale ``lr`` [B, C, h, w] to [B, C, s*h, s*w]."""
        return bicubic_upscale(lr, self.upscale)

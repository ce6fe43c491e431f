"""FSRCNN of Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016."""

from __future__ import annotations

import math

import torch
from torch import nn

from srlab.models.common import check_upscale

__all__ = ["FSRCNN"]


class FSRCNN(nn.Module):
    """Fast Super-Resolution Convolutional Neural Network (FSRCNN).

    Dong, Loy and Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
    ECCV 2016, https://arxiv.org/abs/1608.00367.

    Unlike SRCNN it works on the LR image itself and upsamples only at the end:
    ``first_part``: feature extraction conv 5x5 (``C -> d``) + PReLU; ``mid_part``: shrinking
    conv 1x1 (``d -> s``) + PReLU, ``m`` mapping convs 3x3 (``s -> s``) each + PReLU,
    expanding conv 1x1 (``s -> d``) + PReLU; ``last_part``: a 9x9 deconvolution
    (``d -> C``) with stride ``upscale``, padding 4 and output padding ``upscale - 1``, so
    that an ``h x w`` input gives exactly ``upscale*h x upscale*w``. Convs pad with zeros
    ('same'), as the paper's Caffe model. The layer names are those of the widely used
    yjn870/FSRCNN-pytorch port, so its state dicts load as they are.

    Initialization (the paper, Sec. 4.1): the deconvolution from a zero-mean Gaussian with
    std 1e-3, the convs by He et al.'s method for PReLU networks (std ``sqrt(2 / (k² out))``),
    biases 0, PReLU slopes 0.25. The paper trains the deconvolution with a 10x smaller
    learning rate (1e-4 vs 1e-3): :meth:`lr_multipliers` tells the task.

    Weights (excluding biases and PReLU slopes, as the paper counts them), with ``C`` the
    channels: ``25 C d + d s + 9 m s² + s d + 81 d C``; (56, 12, 4) on Y: 12,464, at any
    scale. FSRCNN-s is ``d=32, s=5, m=1``.

    Args:
        num_in_ch: Channels of the LR input: 1 (the Y channel, the paper's setting) or 3 (RGB).
        num_out_ch: Channels of the SR output; ``None`` means ``num_in_ch``.
        upscale: Integer upscaling factor (>= 1): the deconvolution's stride.
        d: Channels of the LR feature extraction (and of the expanding layer).
        s: Channels after shrinking, in the mapping layers.
        m: Number of 3x3 mapping layers.

    Example:
        >>> net = FSRCNN(upscale=3)
        >>> net(torch.rand(1, 1, 7, 5)).shape
        torch.Size([1, 1, 21, 15])
    """

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int | None = None,
        upscale: int = 3,
        d: int = 56,
        s: int = 12,
        m: int = 4,
    ) -> None:
        super().__init__()
        check_upscale(upscale, "FSRCNN")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.upscale = upscale
        self.first_part = nn.Sequential(nn.Conv2d(num_in_ch, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(
            d, self.num_out_ch, 9, stride=upscale, padding=4, output_padding=upscale - 1
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.PReLU):
                nn.init.constant_(module.weight, 0.25)
        nn.init.normal_(self.last_part.weight, std=1e-3)
        nn.init.zeros_(self.last_part.bias)

    def lr_multipliers(self) -> dict[str, float]:
        """The deconvolution learns 10x slower than the convs (the paper's 1e-4 vs 1e-3)."""
        return {"last_part": 0.1}

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``lr`` ``[B, num_in_ch, h, w]`` to ``[B, num_out_ch, s*h, s*w]``."""
        return self.last_part(self.mid_part(self.first_part(lr)))

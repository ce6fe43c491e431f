"""ESPCN of Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network", CVPR 2016."""

from __future__ import annotations

import math

import torch
from torch import nn

from srlab.models.common import check_upscale

__all__ = ["ESPCN"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ESPCN(nn.Module):
    """Efficient Sub-Pixel Convolutional Neural Network (ESPCN).

    Shi, Caballero, Huszár, Totz, Aitken, Bishop, Rueckert and Wang, CVPR 2016,
    https://arxiv.org/abs/1609.05158.

    All convolutions work on the LR image; the last one outputs ``upscale²`` channels per
    output channel, which the periodic shuffle (``nn.PixelShuffle``) rearranges into the
    ``upscale``-times larger image. The paper's network (section 3.1): ``l = 3``,
    ``(f1, n1) = (5, 64)``, ``(f2, n2) = (3, 32)``, ``f3 = 3``, tanh activations (the paper
    found tanh better than ReLU). Convs pad with zeros ('same'), so an ``h x w`` input gives
    exactly ``upscale*h x upscale*w`` (the paper trained on unpadded sub-images).

    Layer names are those of the widely used yjn870/ESPCN-pytorch port (``first_part.0``,
    ``first_part.2``, ``last_part.0``), so its state dicts load as they are.

    Initialization and learning rates (the paper gives neither the init nor per-layer rates;
    these are the yjn870 port's): He et al.'s normal (std ``sqrt(2 / (k² out))``) for the
    hidden convs, std 1e-3 for the sub-pixel conv, biases 0; :meth:`lr_multipliers` gives the
    sub-pixel conv a 10x smaller learning rate.

    Weights (excluding biases): ``25 C n1 + 9 n1 n2 + 9 n2 C' s²``; the paper's network on Y
    at x3: 1,600 + 18,432 + 2,592 = 22,624 (22,729 parameters with biases).

    Args:
        num_in_ch: Channels of the LR input: 1 (the Y channel, the paper's setting) or 3.
        num_out_ch: Channels of the SR output; ``None`` means ``num_in_ch``.
        upscale: Integer upscaling factor (>= 1).
        n1: Feature maps of the first (5x5) conv.
        n2: Feature maps of the second (3x3) conv.
        activation: ``"tanh"`` (the paper) or ``"relu"``.

    Example:
        >>> net = ESPCN(upscale=3)
        >>> net(torch.rand(1, 1, 7, 5)).shape
        torch.Size([1, 1, 21, 15])
    """

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int | None = None,
        upscale: int = 3,
        n1: int = 64,
        n2: int = 32,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        check_upscale(upscale, "ESPCN")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"ESPCN: activation={activation!r} is not one of {sorted(_ACTIVATIONS)}"
            )
        act = _ACTIVATIONS[activation]
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.upscale = upscale
        self.first_part = nn.Sequential(
            nn.Conv2d(num_in_ch, n1, 5, padding=2), act(), nn.Conv2d(n1, n2, 3, padding=1), act()
        )
        self.last_part = nn.Sequential(
            nn.Conv2d(n2, self.num_out_ch * upscale**2, 3, padding=1), nn.PixelShuffle(upscale)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.first_part:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.last_part[0].weight, std=1e-3)
        nn.init.zeros_(self.last_part[0].bias)

    def lr_multipliers(self) -> dict[str, float]:
        """The sub-pixel conv learns 10x slower than the hidden convs."""
        return {"last_part": 0.1}

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``lr`` ``[B, num_in_ch, h, w]`` to ``[B, num_out_ch, s*h, s*w]``."""
        return self.last_part(self.first_part(lr))

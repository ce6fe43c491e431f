"""Building blocks shared by the residual SR networks (EDSR now, RCAN-style networks later).

Module and attribute names follow BasicSR's ``basicsr/archs/arch_util.py`` (``conv1``/``conv2``
in a residual block, an ``nn.Sequential`` upsampler), so state dicts written by BasicSR load
into the networks built from these blocks without renaming keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from srlab.imaging.imresize import imresize

__all__ = ["MeanShift", "ResidualBlockNoBN", "Upsample", "conv3x3"]


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    """3x3 convolution with bias and 'same' padding (stride 1), the default conv of EDSR/RCAN.

    From ``default_conv`` in the EDSR authors' code (``model/common.py`` of
    sanghyun-son/EDSR-PyTorch). Padding 1 keeps the spatial size, so residual sums line up.

    Args:
        in_ch: Number of input channels.
        out_ch: Number of output channels.

    Returns:
        A freshly initialised ``nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=True)``.
    """
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=True)


class MeanShift(nn.Module):
    """Fixed per-channel shift by a dataset mean: ``y = x + sign * mean``.

    From ``MeanShift`` in the EDSR authors' code, where it is a frozen 1x1 conv; here the mean
    is a plain buffer, so it can never be trained, has no parameters for an optimizer to see,
    and still follows ``.to(device)`` / ``.half()``. The buffer is not persistent: the mean is a
    constructor argument, so it stays out of checkpoints (which keeps state dicts key-compatible
    with BasicSR, whose EDSR holds the mean as a plain tensor).

    Shapes: input ``[B, C, H, W]`` with ``C == len(rgb_mean)``; output the same shape.

    Args:
        rgb_mean: Per-channel mean, in the units of the input (``[0, 1]`` images in srlab).
        sign: ``-1`` to subtract the mean (network input), ``+1`` to add it back (output).

    Example:
        >>> shift = MeanShift((0.5, 0.25, 0.0), sign=-1)
        >>> shift(torch.ones(1, 3, 1, 1)).flatten().tolist()
        [0.5, 0.75, 1.0]
        >>> sum(p.numel() for p in shift.parameters())
        0
    """

    shift: torch.Tensor

    def __init__(self, rgb_mean: Sequence[float], sign: int = -1) -> None:
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"MeanShift sign must be -1 (subtract) or +1 (add), got {sign!r}")
        mean = torch.as_tensor(tuple(rgb_mean), dtype=torch.float32)
        if mean.ndim != 1 or mean.numel() == 0:
            raise ValueError(
                f"MeanShift rgb_mean must be a non-empty 1-D sequence, got {rgb_mean!r}"
            )
        self.register_buffer("shift", (sign * mean).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + sign * mean`` broadcast over batch and space."""
        return x + self.shift

    def extra_repr(self) -> str:
        """Show the signed shift in ``print(model)``."""
        return f"shift={[round(v, 4) for v in self.shift.flatten().tolist()]}"


class ResidualBlockNoBN(nn.Module):
    """Residual block without batch norm: ``out = x + res_scale * conv(relu(conv(x)))``.

    From Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution"
    (EDSR, CVPRW 2017), Fig. 2: batch norm is dropped because it normalises away the range
    flexibility SR needs and costs memory; ``res_scale`` (0.1 in the wide EDSR) is the residual
    scaling of Szegedy et al. that keeps training of very wide networks stable. Named as in
    BasicSR (``conv1``, ``conv2``) so BasicSR checkpoints load as-is.

    Shapes: input and output ``[B, num_feat, H, W]``.

    Args:
        num_feat: Number of channels of the input, the intermediate features and the output.
        res_scale: Factor applied to the residual branch before the skip sum.
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = conv3x3(num_feat, num_feat)
        self.conv2 = conv3x3(num_feat, num_feat)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + res_scale * conv2(relu(conv1(x)))``."""
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


def _is_power_of_two(n: int) -> bool:
    return n >= 2 and (n & (n - 1)) == 0


# Quoted by Upsample's errors, so a bad ``upscale`` in a config says what would work.
_SUPPORTED_SCALES = "3 and powers of two (2, 4, 8, ...)"


class Upsample(nn.Sequential):
    """Sub-pixel (pixel-shuffle) upsampler by an integer ``scale``.

    From Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
    Sub-Pixel Convolutional Neural Network" (ESPCN, CVPR 2016), as used in EDSR's tail
    (``Upsampler`` in the EDSR authors' code, ``Upsample`` in BasicSR): for ``scale = 2**n``,
    ``n`` stages of ``conv3x3(num_feat -> 4 * num_feat)`` + ``PixelShuffle(2)``; for
    ``scale = 3``, one ``conv3x3(num_feat -> 9 * num_feat)`` + ``PixelShuffle(3)``. Repeated x2
    stages rather than one x4 conv keep each conv small (the published EDSR x4 does the same).

    Shapes: input ``[B, num_feat, H, W]``; output ``[B, num_feat, scale * H, scale * W]``.

    Args:
        scale: Upscaling factor: 3 or a power of two >= 2.
        num_feat: Number of channels in and out.

    Raises:
        ValueError: If ``scale`` is not supported; the message names it and the supported ones.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        # bool is an int subclass; True must not pass as scale 1 or anything else.
        if isinstance(scale, bool) or not isinstance(scale, int):
            raise ValueError(
                f"Upsample: scale must be an int, got {scale!r}; "
                f"supported scales: {_SUPPORTED_SCALES}"
            )
        layers: list[nn.Module] = []
        if _is_power_of_two(scale):
            for _ in range(scale.bit_length() - 1):
                layers += [conv3x3(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(num_feat, 9 * num_feat), nn.PixelShuffle(3)]
        else:
            raise ValueError(
                f"Upsample: unsupported scale {scale}; supported scales: {_SUPPORTED_SCALES}"
            )
        super().__init__(*layers)


def check_upscale(upscale: object, owner: str) -> None:
    """Raise a ValueError naming ``owner`` unless ``upscale`` is a positive int."""
    # bool is an int subclass: True must not pass as scale 1.
    if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < 1:
        raise ValueError(f"{owner}: upscale must be a positive int, got {upscale!r}")


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-bicubic upscale of ``lr`` [..., h, w] to exactly [..., scale*h, scale*w]."""
    # MATLAB bicubic, as the paper's pre-upsampling. Asking for the size rather than the scale
    # pins the output to exactly scale x the input (ceil(h * scale) is the same for ints).
    height, width = lr.shape[-2:]
    return imresize(lr, size=(scale * height, scale * width))

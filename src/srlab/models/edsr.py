"""EDSR of Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution",
CVPRW 2017."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from srlab.models.common import MeanShift, ResidualBlockNoBN, Upsample, conv3x3

__all__ = ["EDSR", "DIV2K_RGB_MEAN"]

#: Per-channel RGB mean of the DIV2K training set in [0, 1] units (the EDSR authors' value).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


class EDSR(nn.Module):
    """Enhanced Deep Super-Resolution network (EDSR).

    Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
    Super-Resolution", CVPR Workshops (NTIRE) 2017, https://arxiv.org/abs/1707.02921.

    Architecture: subtract the dataset mean -> head ``conv3x3(num_in_ch -> num_feat)`` ->
    body of ``num_block`` :class:`~srlab.models.common.ResidualBlockNoBN` and a ``conv3x3``,
    with a long skip (``body(x) + x``) -> tail: :class:`~srlab.models.common.Upsample` by
    ``upscale`` and ``conv3x3(num_feat -> num_out_ch)`` -> add the mean back.

    Presets of the paper (trainable parameters at x2 / x3 / x4):

    - ``edsr_baseline``: ``num_block=16, num_feat=64, res_scale=1.0``
      (1,369,859 / 1,554,499 / 1,517,571; the paper's "1.5M" is the x3/x4 count).
    - ``edsr``: ``num_block=32, num_feat=256, res_scale=0.1``
      (40,729,603 / 43,680,003 / 43,089,923; the paper's "43M").

    Submodules are named as in BasicSR's ``EDSR`` (``conv_first``, ``body``,
    ``conv_after_body``, ``upsample``, ``conv_last``) and the mean is not stored in the state
    dict, so BasicSR's EDSR checkpoints load with ``load_state_dict`` (use ``img_range=255``
    for them, the range they were trained in).

    Shapes: input ``[B, num_in_ch, h, w]`` in ``[0, 1]``; output
    ``[B, num_out_ch, upscale * h, upscale * w]``, not clamped (the loss needs the raw values;
    evaluation clips and quantizes).

    Args:
        num_in_ch: Channels of the LR input (3 for RGB, 1 for the Y channel).
        num_out_ch: Channels of the SR output.
        num_feat: Width (feature channels) of every conv between head and tail.
        num_block: Number of residual blocks in the body.
        upscale: Upscaling factor: 2, 3, 4 (any power of two also works). Exposed as
            ``self.upscale``, which the tasks read.
        res_scale: Residual scaling inside each block (1.0 for the baseline, 0.1 for the wide
            EDSR, where it keeps training stable).
        rgb_mean: Per-channel mean subtracted at the input and added back at the output, in the
            ``[0, 1]`` units of the images; defaults to the DIV2K RGB mean. Its length must equal
            ``num_in_ch`` and ``num_out_ch``. ``None`` or all zeros disables the shift. With
            ``num_in_ch != 3`` the default RGB mean is rejected with a ``ValueError`` (rather
            than silently dropped), so a Y-channel EDSR must say ``rgb_mean=None`` (or give its
            own 1-element mean).
        img_range: Factor the mean-shifted input is multiplied by before the head (and the
            output divided by after the tail). 1.0 works directly on ``[0, 1]`` values; 255.0
            reproduces the original and BasicSR code, which run the network on ``[0, 255]``
            values, and is needed to use their pretrained weights.

    Raises:
        ValueError: For an unsupported ``upscale`` or an ``rgb_mean`` whose length does not
            match the channels.

    Example:
        >>> net = EDSR(num_feat=8, num_block=2, upscale=3)
        >>> net(torch.rand(1, 3, 12, 10)).shape
        torch.Size([1, 3, 36, 30])
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        upscale: int = 2,
        res_scale: float = 1.0,
        rgb_mean: Sequence[float] | None = DIV2K_RGB_MEAN,
        img_range: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale
        self.img_range = img_range

        self.sub_mean, self.add_mean = _mean_shifts(rgb_mean, num_in_ch, num_out_ch)
        self.conv_first = conv3x3(num_in_ch, num_feat)
        self.body = nn.Sequential(
            *(ResidualBlockNoBN(num_feat, res_scale) for _ in range(num_block))
        )
        self.conv_after_body = conv3x3(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` ``[B, num_in_ch, h, w]`` to ``[B, num_out_ch, s*h, s*w]``."""
        x = self.sub_mean(x) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.body(x)) + x
        x = self.conv_last(self.upsample(x))
        return self.add_mean(x / self.img_range)


def _mean_shifts(
    rgb_mean: Sequence[float] | None, num_in_ch: int, num_out_ch: int
) -> tuple[nn.Module, nn.Module]:
    """Build the (subtract, add) pair of mean shifts, or identities when the mean is off."""
    if rgb_mean is None:
        return nn.Identity(), nn.Identity()
    mean = tuple(float(v) for v in rgb_mean)
    if len(mean) != num_in_ch or len(mean) != num_out_ch:
        raise ValueError(
            f"EDSR: rgb_mean has {len(mean)} values but num_in_ch={num_in_ch} and "
            f"num_out_ch={num_out_ch}; give one mean per channel (both counts equal), "
            "or rgb_mean=None to disable the mean shift (e.g. for a 1-channel Y network)"
        )
    if not any(mean):
        return nn.Identity(), nn.Identity()
    return MeanShift(mean, sign=-1), MeanShift(mean, sign=1)

"""RRDBNet, the generator of ESRGAN (Wang et al., "ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks", ECCV Workshops 2018)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from srlab.models.common import conv3x3

__all__ = ["RRDB", "RRDBNet", "ResidualDenseBlock", "default_init_weights"]

# Scales with a matching stack of nearest-x2 + conv stages (``conv_up1``, ``conv_up2``).
SUPPORTED_SCALES = (2, 4)

# Residual scaling of ESRGAN (Sec. 3.2 of the paper): the residual branch is multiplied by 0.2
# before the skip sum, which keeps a very deep network without batch norm stable to train.
RESIDUAL_SCALE = 0.2


@torch.no_grad()
def default_init_weights(modules: nn.Module | Iterable[nn.Module], scale: float = 1.0) -> None:
    """Kaiming-normal init of every ``Conv2d``/``Linear`` weight times ``scale``; zero bias.

    BasicSR's ``default_init_weights`` (``basicsr/archs/arch_util.py``). ESRGAN initializes the
    convs of each dense block at a tenth of the Kaiming scale (``scale=0.1``): with 69 dense
    blocks on the residual path, full-scale weights make the initial output explode, while
    small ones start each block close to the identity (Sec. 3.2, "smaller initialization").

    Args:
        modules: A module or modules; every ``Conv2d`` and ``Linear`` inside them is initialized.
        scale: Factor applied to the Kaiming-normal weights.
    """
    if isinstance(modules, nn.Module):
        modules = [modules]
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()


class ResidualDenseBlock(nn.Module):
    """Residual dense block of ESRGAN: five densely connected 3x3 convs and a scaled skip.

    Conv ``k`` (1..4) sees the block input concatenated with the outputs of all previous convs
    (``num_feat + (k - 1) * num_grow_ch`` channels) and adds ``num_grow_ch`` channels;
    ``conv5`` fuses everything back to ``num_feat``:
    ``out = x + 0.2 * conv5(cat(x, x1, x2, x3, x4))``, LeakyReLU(0.2) after convs 1-4.

    Shapes: input and output ``[B, num_feat, H, W]``.

    Args:
        num_feat: Channels of the input and output.
        num_grow_ch: Channels each of ``conv1``..``conv4`` adds (the growth rate).
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = conv3x3(num_feat, num_grow_ch)
        self.conv2 = conv3x3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = conv3x3(num_feat + 4 * num_grow_ch, num_feat)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        default_init_weights([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + 0.2 * conv5(cat(x, x1, x2, x3, x4))``."""
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three :class:`ResidualDenseBlock` and a scaled skip.

    ``out = x + 0.2 * rdb3(rdb2(rdb1(x)))`` (ESRGAN, Fig. 4).

    Shapes: input and output ``[B, num_feat, H, W]``.

    Args:
        num_feat: Channels of the input and output.
        num_grow_ch: Growth rate of the dense blocks.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """RRDBNet, the generator of ESRGAN, trained alone with L1 as the PSNR-oriented model.

    Wang, Yu, Wu, Gu, Liu, Dong, Qiao and Loy, "ESRGAN: Enhanced Super-Resolution Generative
    Adversarial Networks", ECCV Workshops (PIRM) 2018, https://arxiv.org/abs/1809.00219.

    Architecture: ``conv_first`` -> body of ``num_block`` :class:`RRDB` -> ``conv_body``, with a
    long skip (``feat + conv_body(body(feat))``) -> per x2 stage a nearest-neighbour x2
    interpolation, a conv and LeakyReLU(0.2) (``conv_up1``; ``conv_up2`` at x4) -> ``conv_hr`` +
    LeakyReLU -> ``conv_last``. Nearest + conv instead of sub-pixel conv follows ESRGAN's code.
    Dense-block convs start at a tenth of the Kaiming scale (:func:`default_init_weights`); the
    other convs keep PyTorch's default, as in BasicSR.

    Parameter names are BasicSR's (``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``,
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), so BasicSR's x4
    checkpoints load as-is, and the original ESRGAN release through
    :func:`srlab.weights.load_pretrained`. Trainable parameters with the defaults:
    16,697,987 at x4 (the paper's "16.7 M"), 16,661,059 at x2 (no ``conv_up2``).

    At x2 this network has one upsampling stage. BasicSR's (and Real-ESRGAN's) x2 RRDBNet is a
    different design, a pixel-unshuffle of the input to 12 channels in front of the x4 network,
    so their x2 weights do not fit this one (``conv_first`` shape, extra ``conv_up2``).

    Shapes: input ``[B, num_in_ch, h, w]`` in ``[0, 1]`` (no mean shift, no range scaling);
    output ``[B, num_out_ch, upscale * h, upscale * w]``, not clamped.

    Args:
        num_in_ch: Channels of the LR input (3 for RGB, 1 for the Y channel).
        num_out_ch: Channels of the SR output.
        num_feat: Width (feature channels) of the trunk and the upsampler.
        num_block: Number of RRDBs in the body (23 in ESRGAN).
        num_grow_ch: Growth rate of the dense blocks (32 in ESRGAN).
        upscale: Upscaling factor, 2 or 4. Exposed as ``self.upscale``, which the tasks read.

    Raises:
        ValueError: For an ``upscale`` other than 2 or 4; the message names the supported ones.

    Example:
        >>> net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, upscale=2)
        >>> net(torch.rand(1, 3, 5, 7)).shape
        torch.Size([1, 3, 10, 14])
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        upscale: int = 4,
    ) -> None:
        super().__init__()
        # bool is an int subclass: True must not pass for a scale.
        if isinstance(upscale, bool) or upscale not in SUPPORTED_SCALES:
            raise ValueError(
                f"RRDBNet: unsupported upscale {upscale!r}; supported scales: "
                f"{', '.join(map(str, SUPPORTED_SCALES))}"
            )
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale

        self.conv_first = conv3x3(num_in_ch, num_feat)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = conv3x3(num_feat, num_feat)
        self.conv_up1 = conv3x3(num_feat, num_feat)
        # Only registered at x4, so an x2 state dict has no unused conv_up2 in it.
        if upscale == 4:
            self.conv_up2 = conv3x3(num_feat, num_feat)
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def _up_convs(self) -> list[nn.Module]:
        return [self.conv_up1, self.conv_up2] if self.upscale == 4 else [self.conv_up1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` ``[B, num_in_ch, h, w]`` to ``[B, num_out_ch, s*h, s*w]``."""
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv_up in self._up_convs():
            feat = self.lrelu(conv_up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

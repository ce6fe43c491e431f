"""Running a network on images whose channels differ from the network's own.

The one place where colour conventions meet networks: an RGB network given a
grayscale image sees it as R=G=B and its output is reduced back to one channel; a Y-channel
network given RGB super-resolves the MATLAB Y channel and takes Cb/Cr from the MATLAB-bicubic
upscale, as the SRCNN/VDSR papers do.
"""

from __future__ import annotations

import torch
from torch import nn

from srlab.imaging.color import rgb_to_gray, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.imaging.imresize import imresize


def super_resolve(net: nn.Module, lr: torch.Tensor, scale: int | None = None) -> torch.Tensor:
    """``net(lr)`` for an LR batch [B, 1 or 3, h, w] in [0, 1], with the channels of ``lr``.

    The network declares its channels with ``net.num_in_ch`` (default 3) and its scale with
    ``net.upscale``. ``scale``, when it differs from ``net.upscale``, is passed on as
    ``net(lr, scale=scale)``: only networks with ``any_scale`` (VDSR) accept it.
    """
    if scale is not None and scale != getattr(net, "upscale", scale):
        if not getattr(net, "any_scale", False):
            raise ValueError(f"{type(net).__name__} upsamples x{net.upscale} only, not x{scale}")

        def run(x: torch.Tensor) -> torch.Tensor:
            return net(x, scale=scale)
    else:
        run = net
    net_channels = getattr(net, "num_in_ch", 3)
    image_channels = lr.shape[1]
    if image_channels == net_channels:
        return run(lr)
    if image_channels == 1 and net_channels == 3:
        return rgb_to_gray(run(lr.expand(-1, 3, -1, -1)))
    if image_channels == 3 and net_channels == 1:
        ycbcr = rgb_to_ycbcr(lr)
        y = run(ycbcr[:, :1])
        cbcr = imresize(ycbcr[:, 1:], size=tuple(y.shape[-2:]))
        return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
    raise ValueError(
        f"{type(net).__name__} takes {net_channels} channel(s) but the image has "
        f"{image_channels}: srlab supports 1 (grayscale / Y) and 3 (RGB)"
    )


def training_channels(net: nn.Module, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Training images in the network's own channels: the Y channel for a Y network.

    Y networks (SRCNN, FSRCNN, VDSR) are trained on Y alone, as their papers do, so that the
    loss sees exactly what the network predicts; RGB networks get the images as they are.
    """
    if getattr(net, "num_in_ch", 3) == 1:
        return tuple(rgb_to_y(image) if image.shape[1] == 3 else image for image in images)
    return images

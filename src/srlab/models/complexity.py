"""Size and cost of an SR network: parameters and multiply-accumulates (MACs) per LR pixel.

SR papers compare networks by parameters and by Mult-Adds for a given output size (e.g. a
1280x720 SR image, as in CARN and later papers). Counting MACs *per LR pixel* makes the number
independent of the image: for convolutional networks with 'same' padding it is exact at any
input size, and the cost of an image is that number times its LR pixel count. Window-attention
transformers (SwinIR, HAT, DAT) pad their input to a multiple of the window, so theirs is
exact at multiples of it (64, the default size, is one for every window in conf/model/).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["NetworkComplexity", "count_macs", "summary", "summary_table"]


@dataclass(frozen=True)
class NetworkComplexity:
    """Parameters and compute of one network at one scale.

    Attributes:
        name: Class name of the network.
        scale: Its upscaling factor.
        params: Number of parameters (all of them, trainable or not; shared ones once).
        macs_per_lr_pixel: Multiply-accumulates of one forward pass, per pixel of the LR input.
    """

    name: str
    scale: int
    params: int
    macs_per_lr_pixel: float

    def macs_for_lr(self, height: int, width: int) -> float:
        """MACs of one forward pass on an LR image of ``height`` x ``width`` pixels."""
        return self.macs_per_lr_pixel * height * width

    def macs_for_hr(self, height: int = 720, width: int = 1280) -> float:
        """MACs to produce an SR image of ``height`` x ``width`` (default 720p, the papers')."""
        return self.macs_per_lr_pixel * height * width / self.scale**2

    def __str__(self) -> str:
        """One line, e.g. ``RRDBNet x4: 16.70 M params, 17.93 M MACs/LR px (...)``."""
        return (
            f"{self.name} x{self.scale}: {self.params / 1e6:.2f} M params, "
            f"{self.macs_per_lr_pixel / 1e6:.2f} M MACs/LR px "
            f"({self.macs_for_hr() / 1e9:.1f} G for a 1280x720 output)"
        )


def count_macs(net: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Multiply-accumulates of ``net(x)``, counted by PyTorch's ``FlopCounterMode``.

    Every matrix product of the forward pass counts, whichever module or function runs it:
    convolutions (transposed and grouped ones too), linear layers, and the attention products
    (``bmm``, ``scaled_dot_product_attention``) of transformers, which forward hooks on layers
    would miss. Activations, normalizations, pixel shuffles and sums are not counted (a
    rounding error next to them). MACs are half of PyTorch's FLOPs (one multiply, one add).

    Args:
        net: The network; run as is (the caller chooses train/eval mode and grad mode).
        x: Its input.

    Returns:
        The total MACs over the whole batch, and the output of ``net(x)``.
    """
    with FlopCounterMode(display=False) as counter:
        out = net(x)
    return counter.get_total_flops() // 2, out


def summary(
    net: nn.Module, scale: int | None = None, lr_size: int = 64, channels: int | None = None
) -> NetworkComplexity:
    """Count the parameters and the MACs per LR pixel of ``net``.

    Runs one forward pass, in eval mode and without gradients, on a random
    ``[1, channels, lr_size, lr_size]`` input (on the network's device and dtype) and divides
    the MACs of :func:`count_macs` by ``lr_size ** 2``. The network's train/eval mode is
    restored afterwards.

    Args:
        net: The SR network.
        scale: Its upscaling factor; default ``net.upscale``, else inferred from the output size.
        lr_size: Side of the square LR input. Per-pixel MACs do not depend on it for 'same'-padded
            convs; keep it small for big networks on CPU.
        channels: Input channels; default ``net.num_in_ch``, else 3.

    Returns:
        A :class:`NetworkComplexity`.

    Raises:
        ValueError: If the output size is not ``scale * lr_size``.

    Example:
        >>> s = summary(nn.Conv2d(64, 64, 3, padding=1), scale=1, lr_size=8, channels=64)
        >>> s.macs_per_lr_pixel
        36864.0
        >>> print(s)
        Conv2d x1: 0.04 M params, 0.04 M MACs/LR px (34.0 G for a 1280x720 output)
    """
    channels = channels if channels is not None else int(getattr(net, "num_in_ch", 3))
    scale = scale if scale is not None else getattr(net, "upscale", None)
    first = next(iter(net.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.rand(1, channels, lr_size, lr_size, device=device, dtype=dtype)

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            macs, out = count_macs(net, x)
    finally:
        net.train(was_training)

    out_size = out.shape[-1]
    if scale is None:
        scale = out_size // lr_size
    if out_size != scale * lr_size:
        raise ValueError(
            f"{type(net).__name__}: output side {out_size} is not scale {scale} x lr_size "
            f"{lr_size}; pass the network's real scale"
        )
    return NetworkComplexity(
        name=type(net).__name__,
        scale=int(scale),
        params=sum(p.numel() for p in net.parameters()),
        macs_per_lr_pixel=macs / lr_size**2,
    )


def summary_table(items: Iterable[nn.Module | NetworkComplexity], lr_size: int = 64) -> Table:
    """A rich table comparing networks: params, MACs per LR pixel, GMACs for a 720p output.

    Args:
        items: Networks (summarized with :func:`summary` at ``lr_size``) or summaries.
        lr_size: LR input side used for the networks.

    Returns:
        A :class:`rich.table.Table`, one row per item.
    """
    table = Table(title="model size and compute")
    for column in ("model", "scale", "params (M)", "MACs / LR px (M)", "GMACs @ 1280x720 SR"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for item in items:
        s = item if isinstance(item, NetworkComplexity) else summary(item, lr_size=lr_size)
        table.add_row(
            s.name,
            f"x{s.scale}",
            f"{s.params / 1e6:.3f}",
            f"{s.macs_per_lr_pixel / 1e6:.3f}",
            f"{s.macs_for_hr() / 1e9:.1f}",
        )
    return table

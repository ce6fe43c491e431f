"""SRCNN of Dong et al., "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from srlab.models.common import bicubic_upscale, check_upscale

__all__ = ["SRCNN"]


class SRCNN(nn.Module):
    """Super-Resolution Convolutional Neural Network (SRCNN).

    Dong, Loy, He and Tang, "Image Super-Resolution Using Deep Convolutional Networks",
    IEEE TPAMI 38(2), 2016 (first as "Learning a Deep Convolutional Network for Image
    Super-Resolution", ECCV 2014), https://arxiv.org/abs/1501.00092.

    Architecture: MATLAB-bicubic upscale of the LR input by ``upscale`` (done here, inside
    ``forward``, so that SRCNN maps LR to SR like every srlab network) ->
    ``conv1`` ``f1 x f1`` (``num_in_ch -> n1``) + ReLU -> ``conv2`` ``f2 x f2`` (``n1 -> n2``)
    + ReLU -> ``conv3`` ``f3 x f3`` (``n2 -> num_out_ch``). No residual connection.

    Every conv keeps the image size ('same'): it pads ``k // 2`` pixels on each side with
    ``padding_mode`` (``"replicate"`` by default, as the authors' test code, which filters with
    MATLAB's ``imfilter(..., 'same', 'replicate')``). The paper trains on 33x33 sub-images
    with unpadded convs and scores only the central 21x21; training with padding here also
    fits the borders, which is what inference on whole images needs.

    Initialization (the paper, Sec. 3.3): weights from a zero-mean Gaussian with std 1e-3,
    biases 0. The paper trains ``conv3`` with a 10 times smaller learning rate than the
    other layers; :meth:`lr_multipliers` says so to the task that builds the optimizer.

    Parameter count, with ``c_in = num_in_ch``, ``c_out = num_out_ch``, ``(f1, f2, f3) =
    kernel_sizes`` and ``(n1, n2) = num_feat``: weights
    ``f1² c_in n1 + f2² n1 n2 + f3² n2 c_out``, plus ``n1 + n2 + c_out`` biases. On the Y
    channel: 9-5-5 has 57,184 weights + 97 biases = 57,281 parameters; 9-1-5 8,032 + 97 =
    8,129; 9-3-5 24,416 + 97 = 24,513. The count does not depend on ``upscale``.

    Shapes: input ``[B, num_in_ch, h, w]`` in ``[0, 1]``, any ``h, w >= 1``; output
    ``[B, num_out_ch, upscale * h, upscale * w]``, not clamped.

    Args:
        num_in_ch: Channels of the LR input: 1 (the Y channel, the paper's setting) or 3 (RGB).
        num_out_ch: Channels of the SR output; ``None`` means ``num_in_ch``.
        upscale: Integer upscaling factor (>= 1) of the internal bicubic pre-upsampling, and so
            of the network. Exposed as ``self.upscale``, which the tasks read.
        kernel_sizes: Odd filter sizes ``(f1, f2, f3)`` of the three convs: ``(9, 5, 5)`` is the
            paper's best setting, ``(9, 1, 5)`` the ECCV 2014 base model, ``(9, 3, 5)`` between.
        num_feat: Channels ``(n1, n2)`` after ``conv1`` and ``conv2`` (paper: 64, 32).
        padding_mode: How each conv pads its borders: ``"replicate"`` (the authors' code),
            ``"zeros"``, ``"reflect"`` or ``"circular"`` (``nn.Conv2d``'s modes).

    Raises:
        ValueError: For a non-positive or non-integer ``upscale``, or kernel sizes that are not
            three odd positive integers (an even kernel cannot keep the size symmetrically).

    Example:
        >>> net = SRCNN(upscale=3)
        >>> net(torch.rand(2, 1, 5, 7)).shape
        torch.Size([2, 1, 15, 21])
        >>> net.lr_multipliers()
        {'conv3': 0.1}
    """

    def __init__(
        self,
        num_in_ch: int = 1,
        num_out_ch: int | None = None,
        upscale: int = 3,
        kernel_sizes: Sequence[int] = (9, 5, 5),
        num_feat: Sequence[int] = (64, 32),
        padding_mode: str = "replicate",
    ) -> None:
        super().__init__()
        check_upscale(upscale, "SRCNN")
        kernel_sizes = tuple(kernel_sizes)
        num_feat = tuple(num_feat)
        if len(kernel_sizes) != 3 or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0
            for k in kernel_sizes
        ):
            raise ValueError(
                f"SRCNN: kernel_sizes must be three odd positive ints (f1, f2, f3), "
                f"e.g. (9, 5, 5); got {kernel_sizes!r}"
            )
        if len(num_feat) != 2:
            raise ValueError(f"SRCNN: num_feat must be two ints (n1, n2), got {num_feat!r}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.upscale = upscale

        channels = (num_in_ch, *num_feat, self.num_out_ch)

        def conv(i: int) -> nn.Conv2d:
            k = kernel_sizes[i]
            return nn.Conv2d(
                channels[i], channels[i + 1], k, padding=k // 2, padding_mode=padding_mode
            )

        self.conv1 = conv(0)
        self.conv2 = conv(1)
        self.conv3 = conv(2)
        self.relu = nn.ReLU(inplace=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialize as the paper: weights ~ N(0, 1e-3²), biases 0."""
        for conv in (self.conv1, self.conv2, self.conv3):
            nn.init.normal_(conv.weight, mean=0.0, std=1e-3)
            nn.init.zeros_(conv.bias)

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix, relative to the optimizer's lr.

        The paper uses lr 1e-4 for ``conv1``/``conv2`` and 1e-5 for ``conv3``, having found
        the smaller last-layer rate important for convergence. A
        parameter whose name (in ``named_parameters()``) is ``prefix`` or starts with
        ``prefix + "."`` gets ``lr * multiplier``; all others get ``lr``.
        """
        return {"conv3": 0.1}

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``lr`` ``[B, num_in_ch, h, w]`` to ``[B, num_out_ch, s*h, s*w]``."""
        x = bicubic_upscale(lr, self.upscale)
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.conv3(x)


# The two helpers below are shared by the networks of this family (FSRCNN, VDSR import them).

"""The random resizes of the degradation model: kornia's ``resize`` (``F.interpolate``).

Real-ESRGAN resizes with ``torch.nn.functional.interpolate`` in ``area``, ``bilinear`` or
``bicubic`` mode (half-pixel centres, no antialiasing, bicubic with a = -0.75), which is what
:func:`kornia.geometry.transform.resize` runs with ``antialias=False``.
"""

from __future__ import annotations

import torch
from kornia.geometry.transform import resize as kornia_resize

from srlab.data.degradations.config import RESIZE_MODES


def resize(images: torch.Tensor, size: tuple[int, int], mode: int | str) -> torch.Tensor:
    """Resize ``images`` [B, C, H, W] to ``size`` (height, width) with ``mode``: a name of
    :data:`~srlab.data.degradations.config.RESIZE_MODES` or its index."""
    name = RESIZE_MODES[mode] if isinstance(mode, int) else mode
    if tuple(images.shape[-2:]) == tuple(size):
        # Every mode is the identity at the same size (F.interpolate computes it anyway).
        return images
    align = None if name == "area" else False
    return kornia_resize(images, size, interpolation=name, align_corners=align, antialias=False)


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``F.interpolate(scale_factor=factor)``'s output size (floor), at least 1 x 1."""
    return max(1, int(height * factor)), max(1, int(width * factor))

"""Unsharp masking (USM) of the HR patch, as BasicSR's ``USMSharp`` (Real-ESRGAN, Sec. 4.1).

``residual = x - G * x`` with ``G`` the Gaussian of side ``2r + 1`` and OpenCV's default
sigma for that side (``0.3 ((k - 1) / 2 - 1) + 0.8``, 8.0 for r = 50 -> k = 51, as
``cv2.getGaussianKernel(k, 0)``); ``sharp = clip(x + weight * residual)``; the mask of
residuals above ``threshold / 255`` blurred by ``G`` blends ``sharp`` into ``x``. kornia's
``unsharp_mask`` has no thresholded soft mask, so only the (separable) blur is kornia's.
"""

from __future__ import annotations

import torch
from kornia.filters import filter2d_separable, get_gaussian_kernel1d

from srlab.data.degradations.config import SharpenConfig


def usm_line(radius: int, device: torch.device | None = None) -> torch.Tensor:
    """The [1, k] 1-D Gaussian of BasicSR's ``USMSharp(radius)`` (whose 2-D kernel is its
    outer product): side ``radius + 1`` when the radius is even (``radius`` when odd),
    OpenCV's default sigma for that side."""
    side = radius + 1 if radius % 2 == 0 else radius
    sigma = 0.3 * ((side - 1) * 0.5 - 1) + 0.8
    return get_gaussian_kernel1d(side, sigma, device=device, dtype=torch.float64)


def gaussian_blur(images: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
    """Separable blur of ``images`` by ``line`` [1, k] along both axes, borders reflected
    (replicated for an image not larger than the half side)."""
    half = line.shape[-1] // 2
    border = "reflect" if half < min(images.shape[-2:]) else "replicate"
    line = line.to(images.dtype)
    return filter2d_separable(images, line, line, border_type=border)


def usm_sharpen(images: torch.Tensor, config: SharpenConfig | None = None) -> torch.Tensor:
    """Sharpen ``images`` [B, C, H, W] in [0, 1] by thresholded unsharp masking (``config``:
    radius, weight, threshold; None: BasicSR's defaults 50, 0.5, 10)."""
    config = SharpenConfig() if config is None else config
    line = usm_line(config.radius, images.device)
    residual = images - gaussian_blur(images, line)
    mask = (residual.abs() * 255 > config.threshold).to(images.dtype)
    soft = gaussian_blur(mask, line)
    sharp = (images + config.weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * images

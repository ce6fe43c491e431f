"""Blur kernels of the Real-ESRGAN degradation model, made in one batch on any device.

The formulas are those of BasicSR's ``basicsr/data/degradations.py`` (Real-ESRGAN, Sec. 3.1,
"Blur"): with the pixel offset ``p = (x, y)`` from the centre and the covariance
``S = R diag(sx^2, sy^2) R^T`` (``R`` the rotation by ``theta``), ``q = p^T S^-1 p`` and

- Gaussian (isotropic: ``sx = sy``, ``theta = 0``; anisotropic): ``exp(-q / 2)``
- generalized Gaussian: ``exp(-q^beta / 2)``
- plateau: ``1 / (q^beta + 1)``
- 2-D sinc (circular low-pass, cut-off ``omega``): ``omega J1(omega r) / (2 pi r)`` with
  ``r = |p|`` and ``omega^2 / (4 pi)`` at the centre,

each on a ``k x k`` window (``k`` odd), normalized to sum 1, and zero-padded to a common
side so that a batch of kernels of different sizes is one tensor. kornia builds Gaussian
kernels of one sigma pair at a time and has none of the other three families, so they are
written here; filtering is kornia's (:func:`kornia.filters.filter2d`).
"""

from __future__ import annotations

import math

import torch
from kornia.filters import filter2d

from srlab.data.degradations.config import KERNEL_TYPES

_GENERALIZED = [KERNEL_TYPES.index(n) for n in ("generalized_iso", "generalized_aniso")]
_PLATEAU = [KERNEL_TYPES.index(n) for n in ("plateau_iso", "plateau_aniso")]
_SINC = KERNEL_TYPES.index("sinc")


def _grid(side: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    axis = torch.arange(side, dtype=torch.float64, device=device) - (side - 1) / 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return x, y


def _window(sizes: torch.Tensor, side: int) -> torch.Tensor:
    """[B, side, side] masks of the centred ``sizes[b] x sizes[b]`` windows."""
    x, y = _grid(side, sizes.device)
    half = ((sizes.to(torch.float64) - 1) / 2)[:, None, None]
    return (x.abs() <= half) & (y.abs() <= half)


def quadratic_form(
    sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor, side: int
) -> torch.Tensor:
    """``q = p^T S^-1 p`` on a ``side x side`` grid for each sample: [B, side, side].

    ``S = R diag(sigma_x^2, sigma_y^2) R^T``, so ``q = u^2 / sigma_x^2 + v^2 / sigma_y^2`` with
    ``(u, v) = R^T p`` the offset in the kernel's own axes.
    """
    x, y = _grid(side, sigma_x.device)
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = cos * x + sin * y
    v = -sin * x + cos * y
    return (u / sigma_x[:, None, None]) ** 2 + (v / sigma_y[:, None, None]) ** 2


def sinc_kernels(omega: torch.Tensor, side: int) -> torch.Tensor:
    """Unnormalized circular low-pass kernels of cut-offs ``omega`` [B]: [B, side, side]."""
    x, y = _grid(side, omega.device)
    radius = torch.sqrt(x**2 + y**2)
    omega = omega.to(torch.float64)[:, None, None]
    centre = radius == 0
    safe = torch.where(centre, torch.ones_like(radius), radius)
    values = omega * torch.special.bessel_j1(omega * safe) / (2 * math.pi * safe)
    return torch.where(centre, omega**2 / (4 * math.pi), values)


def make_kernels(
    kernel: torch.Tensor,
    size: torch.Tensor,
    sigma_x: torch.Tensor,
    sigma_y: torch.Tensor,
    theta: torch.Tensor,
    beta: torch.Tensor,
    omega: torch.Tensor,
    side: int = 21,
) -> torch.Tensor:
    """A batch of normalized kernels [B, side, side] (float64), one per sample.

    Args:
        kernel: [B] family index into :data:`~srlab.data.degradations.config.KERNEL_TYPES`.
        size: [B] odd kernel sides (at most ``side``); zero outside the centred window.
        sigma_x: [B] standard deviation along the kernel's first axis (Gaussian families).
        sigma_y: [B] along its second axis.
        theta: [B] rotation in radians.
        beta: [B] shape of the generalized Gaussian and plateau kernels.
        omega: [B] cut-off of the sinc kernels (radians per pixel).
        side: the common side the kernels are padded to (odd).
    """
    device = kernel.device
    as64 = [t.to(device=device, dtype=torch.float64) for t in (sigma_x, sigma_y, theta, beta)]
    sigma_x, sigma_y, theta, beta = as64
    q = quadratic_form(sigma_x, sigma_y, theta, side)
    kind = kernel[:, None, None]
    generalized = torch.isin(kind, torch.tensor(_GENERALIZED, device=device))
    plateau = torch.isin(kind, torch.tensor(_PLATEAU, device=device))
    # Gaussian-like families: beta = 1 for the plain Gaussians.
    power = q ** torch.where(generalized | plateau, beta[:, None, None], torch.ones_like(q))
    values = torch.where(plateau, 1.0 / (power + 1.0), torch.exp(-0.5 * power))
    values = torch.where(kind == _SINC, sinc_kernels(omega.to(device), side), values)
    values = values * _window(size.to(device), side)
    return values / values.sum(dim=(-2, -1), keepdim=True)


def pulse(batch: int, side: int, device: torch.device) -> torch.Tensor:
    """Identity kernels [batch, side, side]: 1 at the centre (a skipped blur)."""
    kernels = torch.zeros(batch, side, side, dtype=torch.float64, device=device)
    kernels[:, side // 2, side // 2] = 1.0
    return kernels


def blur(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Correlate each image [B, C, H, W] with its kernel [B, k, k] (or one [1, k, k]).

    Borders are reflected (BasicSR's ``filter2D``); an image not larger than the kernel's
    half side, which reflection cannot pad, is padded by replicating its edge. All-zero outer
    rings of the kernels are trimmed first, which changes nothing but the cost.
    """
    kernels = _trim(kernels)
    half = kernels.shape[-1] // 2
    border = "reflect" if half < min(images.shape[-2:]) else "replicate"
    return filter2d(images, kernels.to(images.dtype), border_type=border)


def _trim(kernels: torch.Tensor) -> torch.Tensor:
    side = kernels.shape[-1]
    used = kernels.abs().amax(dim=(0, 1)) > 0  # columns with a non-zero entry (kernels are square)
    rows = kernels.abs().amax(dim=(0, 2)) > 0
    both = used | rows
    if not both.any():
        return kernels
    first = int(torch.nonzero(both)[0])
    margin = min(first, side - 1 - int(torch.nonzero(both)[-1]))
    return kernels[:, margin : side - margin, margin : side - margin] if margin else kernels

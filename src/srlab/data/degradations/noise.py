"""Gaussian and Poisson noise, colour or grey, each sample from its own seeded generator.

As BasicSR's ``random_add_gaussian_noise_pt`` / ``random_add_poisson_noise_pt`` (Real-ESRGAN,
Sec. 3.1, "Noise"): Gaussian noise of standard deviation ``sigma / 255``; Poisson noise of the
image quantized to 8 bits, ``Poisson(x * v) / v - x`` with ``v`` the number of distinct
levels in the sample rounded up to a power of two, times ``scale``; grey noise is drawn once
on the luma (:func:`kornia.color.rgb_to_grayscale`) and added to every channel. The result
is clipped to [0, 1]. kornia has no noise model of this kind, so it is written here; each
sample's noise comes from a generator on the image's device seeded by the sample's ``seed``,
so it does not depend on which batch or process the sample is in.
"""

from __future__ import annotations

import math

import torch
from kornia.color import rgb_to_grayscale


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed) % 2**63)


def gaussian_noise(image: torch.Tensor, sigma: float, gray: bool, seed: int) -> torch.Tensor:
    """The Gaussian noise of one image [C, H, W]: ``sigma / 255`` times standard normals from
    the generator seeded by ``seed`` ([1, H, W] broadcast over channels when ``gray``)."""
    shape = (1, *image.shape[-2:]) if gray else tuple(image.shape)
    normal = torch.randn(
        shape, generator=_generator(seed, image.device), device=image.device, dtype=image.dtype
    )
    return normal * (sigma / 255.0)


def distinct_levels(image: torch.Tensor) -> int:
    """Distinct 8-bit levels of ``image`` rounded up to a power of two (Poisson's ``v``)."""
    levels = int(torch.unique(torch.clamp((image * 255.0).round(), 0, 255)).numel())
    return 2 ** math.ceil(math.log2(max(levels, 1)))


def poisson_noise(image: torch.Tensor, scale: float, gray: bool, seed: int) -> torch.Tensor:
    """The Poisson noise of one image [C, H, W] (see the module docstring)."""
    source = rgb_to_grayscale(image) if gray and image.shape[0] == 3 else image
    quantized = torch.clamp((source * 255.0).round(), 0, 255) / 255.0
    levels = distinct_levels(quantized)
    counts = torch.poisson(quantized * levels, generator=_generator(seed, image.device))
    return (counts / levels - quantized) * scale


def add_noise(images: torch.Tensor, params: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """Add each sample's noise of stage ``prefix`` (``s1_``, ``s2_``) to ``images`` [B, C, H, W]
    and clip to [0, 1]; ``params`` holds [B] tensors (:mod:`srlab.data.degradations.params`)."""
    rows = []
    for index, image in enumerate(images):
        gray = bool(params[f"{prefix}gray"][index])
        seed = int(params[f"{prefix}seed"][index])
        if bool(params[f"{prefix}gaussian"][index]):
            sigma = float(params[f"{prefix}noise_sigma"][index])
            noise = gaussian_noise(image, sigma, gray, seed)
        else:
            scale = float(params[f"{prefix}poisson_scale"][index])
            noise = poisson_noise(image, scale, gray, seed)
        rows.append(image + noise)
    return torch.stack(rows).clamp(0, 1)

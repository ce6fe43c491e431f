"""Blur kernels against a numpy/scipy transcription of the formulas (BasicSR's
``basicsr/data/degradations.py``: sigma_matrix2, pdf2, the generalized and plateau kernels,
circular_lowpass_kernel), and the blur against scipy's correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, special

from srlab.data.degradations.config import KERNEL_TYPES
from srlab.data.degradations.kernels import blur, make_kernels, pulse


def reference_kernel(kind: str, size: int, sx: float, sy: float, theta: float, beta: float,
                     omega: float, side: int) -> np.ndarray:  # fmt: skip
    """The kernel as BasicSR writes it, on its own size x size window, zero-padded to side."""
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], axis=-1)
    if kind == "sinc":
        c = (size - 1) / 2
        r = np.sqrt((np.arange(size)[:, None] - c) ** 2 + (np.arange(size)[None, :] - c) ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            k = omega * special.j1(omega * r) / (2 * np.pi * r)
        k[(size - 1) // 2, (size - 1) // 2] = omega**2 / (4 * np.pi)
    else:
        d = np.diag([sx**2, sy**2])
        u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        inverse = np.linalg.inv(u @ d @ u.T)
        q = np.sum((grid @ inverse) * grid, axis=2)
        if kind.startswith("generalized"):
            k = np.exp(-0.5 * q**beta)
        elif kind.startswith("plateau"):
            k = 1.0 / (q**beta + 1)
        else:
            k = np.exp(-0.5 * q)
    k = k / k.sum()
    pad = (side - size) // 2
    return np.pad(k, pad)


CASES = [
    ("iso", 7, 1.3, 1.3, 0.0, 0.0, 0.0),
    ("aniso", 21, 2.5, 0.4, 0.7, 0.0, 0.0),
    ("aniso", 13, 0.2, 3.0, -2.9, 0.0, 0.0),
    ("generalized_iso", 15, 1.7, 1.7, 0.0, 0.5, 0.0),
    ("generalized_aniso", 21, 2.9, 1.1, 1.9, 3.7, 0.0),
    ("plateau_iso", 9, 1.2, 1.2, 0.0, 1.6, 0.0),
    ("plateau_aniso", 19, 0.6, 2.2, -0.5, 1.0, 0.0),
    ("sinc", 7, 0.0, 0.0, 0.0, 0.0, math.pi / 3),
    ("sinc", 21, 0.0, 0.0, 0.0, 0.0, 2.5),
]


def test_every_family_equals_the_transcription_of_its_formula() -> None:
    side = 21
    columns = list(zip(*CASES, strict=True))
    kinds = torch.tensor([KERNEL_TYPES.index(k) for k in columns[0]])
    tensors = [torch.tensor(c, dtype=torch.float64) for c in columns[2:]]
    made = make_kernels(kinds, torch.tensor(columns[1]), *tensors, side=side)
    for index, case in enumerate(CASES):
        expected = reference_kernel(*case, side=side)
        # torch.special.bessel_j1 agrees with scipy.special.j1 to ~1e-7 (relative) at the
        # arguments of a 21-px sinc; the Gaussian-like families to rounding.
        atol = 1e-7 if case[0] == "sinc" else 1e-12
        np.testing.assert_allclose(
            made[index].numpy(), expected, rtol=0, atol=atol, err_msg=case[0]
        )
        assert made[index].sum().item() == pytest.approx(1.0, abs=1e-12)


def test_pulse_is_the_identity_filter() -> None:
    image = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(blur(image, pulse(2, 21, image.device)), image, rtol=0, atol=0)


def test_blur_equals_scipy_correlation_with_reflected_borders() -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 3, 30, 25, generator=generator, dtype=torch.float64)
    kinds = torch.tensor([KERNEL_TYPES.index("aniso"), KERNEL_TYPES.index("sinc")])
    kernels = make_kernels(
        kinds, torch.tensor([9, 21]), *(torch.tensor(v, dtype=torch.float64) for v in
        ([2.0, 0.0], [0.5, 0.0], [0.8, 0.0], [0.0, 0.0], [0.0, 1.5])),
    )  # fmt: skip
    out = blur(image, kernels)
    for b in range(2):
        for c in range(3):
            # scipy's "mirror" (d c b | a b c d | c b a) is torch's "reflect".
            expected = ndimage.correlate(image[b, c].numpy(), kernels[b].numpy(), mode="mirror")
            np.testing.assert_allclose(out[b, c].numpy(), expected, rtol=0, atol=1e-10)


def test_an_image_smaller_than_the_kernel_is_padded_by_its_edge() -> None:
    image = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kernels = make_kernels(
        torch.tensor([0]), torch.tensor([21]), *(torch.tensor([v], dtype=torch.float64)
                                                 for v in (3.0, 3.0, 0.0, 0.0, 0.0)),
    )  # fmt: skip
    out = blur(image, kernels)
    expected = ndimage.correlate(image[0, 0].numpy(), kernels[0].numpy(), mode="nearest")
    np.testing.assert_allclose(out[0, 0].numpy(), expected, rtol=0, atol=1e-10)

"""Resizes against a numpy transcription of PyTorch's interpolation (half-pixel centres; area
as adaptive average pooling; bicubic with a = -0.75, clamped borders), and unsharp masking
against OpenCV (``cv2.getGaussianKernel``, ``cv2.filter2D``) as BasicSR's ``USMSharp`` uses it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from srlab.data.degradations.config import SharpenConfig
from srlab.data.degradations.resize import resize
from srlab.data.degradations.sharpen import usm_sharpen


def _weights_linear(t: float) -> np.ndarray:
    return np.array([1 - t, t])


def _cubic(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    x = np.abs(x)
    return np.where(
        x <= 1,
        (a + 2) * x**3 - (a + 3) * x**2 + 1,
        np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
    )


def _resample_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    matrix = np.zeros((n_out, n_in))
    step = n_in / n_out
    for i in range(n_out):
        if mode == "area":
            start, end = int(np.floor(i * step)), int(np.ceil((i + 1) * step))
            matrix[i, start:end] = 1.0 / (end - start)
            continue
        src = (i + 0.5) * step - 0.5
        if mode == "bilinear":
            src = max(src, 0.0)
            left = int(np.floor(src))
            for offset, weight in zip((0, 1), _weights_linear(src - left), strict=True):
                matrix[i, min(left + offset, n_in - 1)] += weight
        else:
            left = int(np.floor(src))
            for offset in (-1, 0, 1, 2):
                weight = _cubic(np.array(src - (left + offset)))
                matrix[i, min(max(left + offset, 0), n_in - 1)] += weight
    return matrix


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(7, 5), (23, 31), (16, 12)])
def test_resize_equals_the_numpy_transcription(mode: str, size: tuple[int, int]) -> None:
    image = torch.rand(
        1, 3, 16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    out = resize(image, size, mode)[0].numpy()
    rows, cols = _resample_matrix(16, size[0], mode), _resample_matrix(12, size[1], mode)
    expected = np.einsum("oh,chw,pw->cop", rows, image[0].numpy(), cols)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_usm_equals_basicsr_usmsharp_written_with_opencv() -> None:
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 64, 60, generator=generator, dtype=torch.float64)
    config = SharpenConfig()
    out = usm_sharpen(image, config)[0].numpy().transpose(1, 2, 0)
    x = image[0].numpy().transpose(1, 2, 0)
    kernel_1d = cv2.getGaussianKernel(51, 0)  # radius 50 -> 51, as USMSharp
    kernel = kernel_1d @ kernel_1d.T
    blurred = cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    residual = x - blurred
    mask = (np.abs(residual) * 255 > 10).astype(np.float64)
    soft = cv2.filter2D(mask, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    sharp = np.clip(x + 0.5 * residual, 0, 1)
    expected = soft * sharp + (1 - soft) * x
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)

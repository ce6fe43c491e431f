"""NIQE, the natural image quality evaluator: a no-reference score (lower is more natural).

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE
Signal Processing Letters 20(3), 2013, as the authors' MATLAB release computes it
(``computequality.m`` of http://live.ece.utexas.edu/research/quality/niqe_release.zip, 96 x 96
blocks without overlap) and BasicSR transcribes it (``basicsr/metrics/niqe.py``), with the
release's pristine-image model (``weights/niqe_pris_params.npz``, see
``weights/ATTRIBUTION.md``). In torch, batched over the blocks of an image, in float64.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srlab.imaging.imresize import imresize
from srlab.metrics.sr_metrics import to_y255

__all__ = ["NIQE", "niqe_y"]

BLOCK = 96  # the release's recommended block size, also that of its pristine model
# The AGGD shape grid of computequality.m / BasicSR: 0.2:0.001:10 (numpy arange's values).
_GRID_SIZE = 9801
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def pristine_file() -> Path:
    """The shipped NIQE pristine model (``mu_pris_param``, ``cov_pris_param``,
    ``gaussian_window``)."""
    return Path(
        str(resources.files("srlab.metrics.perceptual") / "weights" / "niqe_pris_params.npz")
    )


def _aggd(x: torch.Tensor, grid: torch.Tensor, r_grid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Asymmetric generalized Gaussian fit (paper eq. 7) of each row of ``x`` ``[N, n]``:
    ``(alpha, beta_l, beta_r)``, each ``[N]``, by the release's grid search over alpha."""
    neg, pos = x < 0, x > 0
    square = x.square()
    left_std = ((square * neg).sum(1) / neg.sum(1)).sqrt()
    right_std = ((square * pos).sum(1) / pos.sum(1)).sqrt()
    gamma_hat = left_std / right_std
    r_hat = x.abs().mean(1).square() / square.mean(1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat.square() + 1).square()
    position = (r_grid[None, :] - r_hat_norm[:, None]).square().argmin(dim=1)
    alpha = grid[position]
    ratio = (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)).mul(0.5).exp()
    return alpha, left_std * ratio, right_std * ratio


def _block_features(blocks: torch.Tensor, grid: torch.Tensor, r_grid: torch.Tensor) -> torch.Tensor:
    """The 18 features of each normalized block ``[N, b, b]`` (paper section III): the AGGD of
    the coefficients, then of the products with their four neighbours (circular shifts within
    the block, as the release's ``circshift``)."""
    n = blocks.shape[0]
    flat = blocks.reshape(n, -1)
    alpha, beta_l, beta_r = _aggd(flat, grid, r_grid)
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in _SHIFTS:
        product = (blocks * torch.roll(blocks, shifts=shift, dims=(1, 2))).reshape(n, -1)
        alpha, beta_l, beta_r = _aggd(product, grid, r_grid)
        mean = (beta_r - beta_l) * (torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha)).exp()
        features += [alpha, mean, beta_l, beta_r]
    return torch.stack(features, dim=1)


def _to_blocks(image: torch.Tensor, side: int) -> torch.Tensor:
    """``[H, W]`` (multiples of ``side``) -> ``[N, side, side]`` non-overlapping blocks."""
    rows, cols = image.shape[0] // side, image.shape[1] // side
    return image.reshape(rows, side, cols, side).permute(0, 2, 1, 3).reshape(-1, side, side)


def niqe_y(
    y: torch.Tensor,
    mu_pristine: torch.Tensor,
    cov_pristine: torch.Tensor,
    window: torch.Tensor,
) -> torch.Tensor:
    """NIQE of one luminance image ``y`` ``[H, W]`` in [0, 255] (float64).

    The image is cropped to whole 96 x 96 blocks (top left kept). At two scales (the image,
    then its MATLAB-bicubic half): local mean and deviation under the 7 x 7 Gaussian ``window``
    (replicate borders, as ``imfilter(..., 'replicate')``), MSCN coefficients
    ``(y - mu) / (sigma + 1)``, and 18 features per block; the 36 features of all blocks are
    fitted with a multivariate Gaussian (NaN-free rows for the covariance), and the score is
    ``sqrt((mu_p - mu_d)^T pinv((cov_p + cov_d) / 2) (mu_p - mu_d))`` (paper eq. 10).

    Args:
        y: the luminance in [0, 255], at least 192 x 96 or 96 x 192 pixels (two blocks: one
            block has no covariance).
        mu_pristine: ``[36]`` mean of the pristine model.
        cov_pristine: ``[36, 36]`` covariance of the pristine model.
        window: ``[7, 7]`` Gaussian window.

    Returns:
        A float64 scalar.

    Raises:
        ValueError: an image too small for two blocks.
    """
    height, width = y.shape
    rows, cols = height // BLOCK, width // BLOCK
    if rows * cols < 2:
        raise ValueError(
            f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got a {height}x{width} image: "
            f"score images of at least {2 * BLOCK}x{BLOCK} pixels (with data.eval_crop, a crop "
            f"of at least {2 * BLOCK})"
        )
    dtype, device = torch.float64, y.device
    image = y[: rows * BLOCK, : cols * BLOCK].to(dtype)
    grid = torch.arange(_GRID_SIZE, dtype=dtype, device=device) * 0.001 + 0.2
    r_grid = (2 * torch.lgamma(2 / grid) - torch.lgamma(1 / grid) - torch.lgamma(3 / grid)).exp()
    kernel = window.to(device, dtype)[None, None]
    pad = kernel.shape[-1] // 2
    features = []
    for scale in (1, 2):
        planes = torch.stack([image, image.square()])[:, None]
        padded = F.pad(planes, (pad, pad, pad, pad), mode="replicate")
        mu, mean_square = F.conv2d(padded, kernel)[:, 0]
        sigma = (mean_square - mu.square()).abs().sqrt()
        normalized = (image - mu) / (sigma + 1)
        features.append(_block_features(_to_blocks(normalized, BLOCK // scale), grid, r_grid))
        if scale == 1:
            image = imresize(image[None, None] / 255, scale=0.5)[0, 0] * 255
    distorted = torch.cat(features, dim=1)
    mu_distorted = distorted.nanmean(dim=0)
    complete = distorted[~distorted.isnan().any(dim=1)]
    cov_distorted = torch.cov(complete.T)
    mu_pristine = mu_pristine.to(device, dtype).reshape(-1)
    inverse = torch.linalg.pinv((cov_pristine.to(device, dtype) + cov_distorted) / 2)
    difference = mu_pristine - mu_distorted
    return (difference @ inverse @ difference).sqrt()


class NIQE(nn.Module):
    """NIQE of each image of a batch, on its luminance (lower is more natural).

    The image is quantized to 8-bit levels and its Y channel taken as MATLAB's ``rgb2ycbcr``
    gives it for a uint8 image (rounded; a grayscale image is its own Y), as BasicSR's
    ``calculate_niqe(img, crop_border, convert_to='y')`` does; then :func:`niqe_y`.

    Args:
        crop_border: pixels cut from every side first (BasicSR's ``crop_border``; 0 scores
            the whole image, as the MATLAB release does).
        params: the pristine model, a ``.npz`` with ``mu_pris_param``, ``cov_pris_param`` and
            ``gaussian_window`` (BasicSR's layout); None: the release's (package data).

    Shapes: ``forward(images)``: ``[B, C, H, W]`` in [0, 1], C 1 or 3; returns ``[B]`` float64.

    Example:
        >>> metric = NIQE()
        >>> image = torch.rand(1, 3, 96, 192, generator=torch.Generator().manual_seed(0))
        >>> bool(metric(image) > 10)  # white noise is far from natural
        True
    """

    def __init__(self, crop_border: int = 0, params: str | Path | None = None) -> None:
        super().__init__()
        if crop_border < 0:
            raise ValueError(f"NIQE crop_border must be >= 0, got {crop_border}")
        self.crop_border = crop_border
        with np.load(pristine_file() if params is None else Path(params)) as model:
            missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(model.files)
            if missing:
                raise ValueError(
                    f"NIQE params {params}: missing {sorted(missing)} (BasicSR's "
                    "niqe_pris_params.npz layout)"
                )
            mu, cov, window = (
                torch.from_numpy(model[k]).to(torch.float64)
                for k in ("mu_pris_param", "cov_pris_param", "gaussian_window")
            )
        self.register_buffer("mu_pristine", mu.reshape(-1), persistent=False)
        self.register_buffer("cov_pristine", cov, persistent=False)
        self.register_buffer("window", window, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """NIQE of each image: ``[B]`` float64."""
        y = to_y255(images.detach(), round_y=True)[:, 0]
        if self.crop_border:
            c = self.crop_border
            y = y[:, c:-c, c:-c]
        return torch.stack(
            [niqe_y(plane, self.mu_pristine, self.cov_pristine, self.window) for plane in y]
        )

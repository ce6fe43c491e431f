"""A transcription of BasicSR's NIQE (``basicsr/metrics/niqe.py`` of basicsr 1.4.2, Apache-2.0,
Copyright 2018-2022 BasicSR Authors), the reference srlab's torch NIQE is tested against.

BasicSR cannot be installed beside srlab's torch and torchvision (see
``docs/perceptual_metrics.md``), so its NumPy/SciPy code is transcribed here, loop for loop:
per-block feature extraction with ``np.roll``, ``scipy.ndimage.convolve`` with
``mode='nearest'``, a grid search for the AGGD shape, NaN-aware mean and covariance, ``pinv``.
Two changes, both outside the NIQE algorithm: the MATLAB-bicubic half-size image comes from a
caller-given ``imresize`` (BasicSR's own, in ``basicsr/utils/matlab_functions.py``, runs in
float32 through torch), and the dtype of the computation is a parameter (BasicSR computes in
float32: ``img.astype(np.float32)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma


def estimate_aggd_param(block: np.ndarray) -> tuple[float, float, float]:
    """AGGD parameters (alpha, beta_l, beta_r) of a block, BasicSR's ``estimate_aggd_param``."""
    block = block.flatten()
    gam = np.arange(0.2, 10.001, 0.001)  # len = 9801
    gam_reciprocal = np.reciprocal(gam)
    r_gam = np.square(gamma(gam_reciprocal * 2)) / (
        gamma(gam_reciprocal) * gamma(gam_reciprocal * 3)
    )
    left_std = np.sqrt(np.mean(block[block < 0] ** 2))
    right_std = np.sqrt(np.mean(block[block > 0] ** 2))
    gammahat = left_std / right_std
    rhat = (np.mean(np.abs(block))) ** 2 / np.mean(block**2)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    array_position = np.argmin((r_gam - rhatnorm) ** 2)
    alpha = gam[array_position]
    beta_l = left_std * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    beta_r = right_std * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, beta_l, beta_r


def compute_feature(block: np.ndarray) -> list[float]:
    """The 18 features of a block, BasicSR's ``compute_feature``."""
    feat = []
    alpha, beta_l, beta_r = estimate_aggd_param(block)
    feat.extend([alpha, (beta_l + beta_r) / 2])
    shifts = [[0, 1], [1, 0], [1, 1], [1, -1]]
    for shift in shifts:
        shifted_block = np.roll(block, shift, axis=(0, 1))
        alpha, beta_l, beta_r = estimate_aggd_param(block * shifted_block)
        mean = (beta_r - beta_l) * (gamma(2 / alpha) / gamma(1 / alpha))
        feat.extend([alpha, mean, beta_l, beta_r])
    return feat


def niqe(
    img: np.ndarray,
    mu_pris_param: np.ndarray,
    cov_pris_param: np.ndarray,
    gaussian_window: np.ndarray,
    imresize_half: Callable[[np.ndarray], np.ndarray],
    block_size_h: int = 96,
    block_size_w: int = 96,
) -> float:
    """BasicSR's ``niqe`` on a luminance image ``img`` ``(h, w)`` in [0, 255]."""
    assert img.ndim == 2
    h, w = img.shape
    num_block_h = math.floor(h / block_size_h)
    num_block_w = math.floor(w / block_size_w)
    img = img[0 : num_block_h * block_size_h, 0 : num_block_w * block_size_w]
    distparam = []
    for scale in (1, 2):
        mu = convolve(img, gaussian_window, mode="nearest")
        sigma = np.sqrt(
            np.abs(convolve(np.square(img), gaussian_window, mode="nearest") - np.square(mu))
        )
        img_nomalized = (img - mu) / (sigma + 1)
        feat = []
        for idx_w in range(num_block_w):
            for idx_h in range(num_block_h):
                block = img_nomalized[
                    idx_h * block_size_h // scale : (idx_h + 1) * block_size_h // scale,
                    idx_w * block_size_w // scale : (idx_w + 1) * block_size_w // scale,
                ]
                feat.append(compute_feature(block))
        distparam.append(np.array(feat))
        if scale == 1:
            img = imresize_half(img / 255.0) * 255.0
    distparam = np.concatenate(distparam, axis=1)
    mu_distparam = np.nanmean(distparam, axis=0)
    distparam_no_nan = distparam[~np.isnan(distparam).any(axis=1)]
    cov_distparam = np.cov(distparam_no_nan, rowvar=False)
    invcov_param = np.linalg.pinv((cov_pris_param + cov_distparam) / 2)
    quality = np.matmul(
        np.matmul((mu_pris_param - mu_distparam), invcov_param),
        np.transpose(mu_pris_param - mu_distparam),
    )
    return float(np.squeeze(np.sqrt(quality)))


def y_channel(rgb_uint8: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """BasicSR's ``to_y_channel`` then ``round`` of ``calculate_niqe`` for an RGB uint8 image
    (BasicSR reads BGR with OpenCV; the coefficients are applied to the same channels)."""
    img = rgb_uint8.astype(dtype) / 255.0
    y = np.dot(img, np.array([65.481, 128.553, 24.966], dtype=dtype)) + 16.0
    return (y / 255.0 * 255.0).round()

"""MATLAB-compatible colour conversion (``rgb2ycbcr`` / ``ycbcr2rgb`` for double input).

The SR literature scores PSNR/SSIM on the Y channel of MATLAB's ``rgb2ycbcr``, which is the
ITU-R BT.601 *studio-range* transform: with R, G, B in [0, 1],

.. code-block:: text

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255     in [16/255, 235/255]
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255     in [16/255, 240/255]
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255     in [16/255, 240/255]

All tensors here are float ``[..., 3, H, W]`` (channels third from last, any leading batch
dimensions) and stay on their device and dtype.

kornia's ``kornia.color.rgb_to_ycbcr`` is **not** the same: it is full-range (Y = 0.299 R +
0.587 G + 0.114 B in [0, 1], chroma centred on 0.5 with no 16..235 headroom). Its Y differs
from MATLAB's by up to 16/255 and scores differently, so published tables cannot be
reproduced with it; use this module instead.

This module is pure torch (no Lightning, no Hydra) so models, metrics and scripts can all
share the one definition of the conversion.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_gray", "rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]

# MATLAB's rgb2ycbcr coefficients (for RGB in [0, 1], output in [0, 255]); rows are Y, Cb, Cr.
_RGB_TO_YCBCR = torch.tensor(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=torch.float64,
)
_YCBCR_OFFSET = torch.tensor([16.0, 128.0, 128.0], dtype=torch.float64)
# The Y row sums to exactly 219 (= 235 - 16): that is the luma gain rgb_to_gray undoes.
_Y_RANGE = 219.0

# Both directions as affine maps on [0, 1]-scaled values, built once in float64 so the inverse
# is exact to double precision before it is cast to the caller's dtype.
_FORWARD_MATRIX = _RGB_TO_YCBCR / 255.0
_FORWARD_OFFSET = _YCBCR_OFFSET / 255.0
_INVERSE_MATRIX = torch.linalg.inv(_FORWARD_MATRIX)
_INVERSE_OFFSET = -_INVERSE_MATRIX @ _FORWARD_OFFSET


def _check_three_channels(image: Tensor, name: str) -> None:
    """Raise unless ``image`` is a floating tensor shaped ``[..., 3, H, W]``."""
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"{name} expects a [..., 3, H, W] tensor, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        # MATLAB scales integer input differently (uint8 levels, not [0, 1]); refuse rather than
        # silently treating levels 0..255 as if they were [0, 1] intensities.
        raise TypeError(f"{name} expects a floating-point tensor in [0, 1], got {image.dtype}")


def _affine(image: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """Apply ``out[c] = sum_k matrix[c, k] * image[k] + offset[c]`` over the channel axis."""
    matrix = matrix.to(device=image.device, dtype=image.dtype)
    offset = offset.to(device=image.device, dtype=image.dtype)
    return torch.einsum("ck,...khw->...chw", matrix, image) + offset[:, None, None]


def rgb_to_ycbcr(image: Tensor) -> Tensor:
    """Convert RGB to YCbCr exactly like MATLAB's ``rgb2ycbcr`` on double input.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``,
    ``Cb = (128 - 37.797 R - 74.203 G + 112 B) / 255``,
    ``Cr = (128 + 112 R - 93.786 G - 18.214 B) / 255``.

    Args:
        image: float RGB ``[..., 3, H, W]`` in [0, 1].

    Returns:
        YCbCr ``[..., 3, H, W]`` in MATLAB's scaled range: Y in [16/255, 235/255], Cb and Cr
        in [16/255, 240/255] for in-range input. Nothing is clipped.

    Example:
        >>> import torch
        >>> white = torch.ones(1, 3, 1, 1)
        >>> (rgb_to_ycbcr(white) * 255).flatten().round(decimals=3).tolist()
        [235.0, 128.0, 128.0]
    """
    _check_three_channels(image, "rgb_to_ycbcr")
    return _affine(image, _FORWARD_MATRIX, _FORWARD_OFFSET)


def ycbcr_to_rgb(image: Tensor) -> Tensor:
    """Convert MATLAB-range YCbCr back to RGB (MATLAB's ``ycbcr2rgb`` on double input).

    The exact inverse of :func:`rgb_to_ycbcr`. No clipping is applied, so YCbCr values that
    come from no in-gamut RGB (for example a Y network's output with bicubic chroma) may give
    RGB slightly outside [0, 1]; clip where an image is saved or scored.

    Args:
        image: float YCbCr ``[..., 3, H, W]`` in MATLAB's scaled range (see
            :func:`rgb_to_ycbcr`).

    Returns:
        RGB ``[..., 3, H, W]``, in [0, 1] for YCbCr produced from in-range RGB.

    Example:
        >>> import torch
        >>> rgb = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1)
        >>> torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-6)
        True
    """
    _check_three_channels(image, "ycbcr_to_rgb")
    return _affine(image, _INVERSE_MATRIX, _INVERSE_OFFSET)


def rgb_to_y(image: Tensor) -> Tensor:
    """Return only the Y channel of MATLAB's ``rgb2ycbcr``, the channel SR papers score.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``.

    Args:
        image: float RGB ``[..., 3, H, W]`` in [0, 1].

    Returns:
        Y ``[..., 1, H, W]`` in [16/255, 235/255] for in-range input.

    Example:
        >>> import torch
        >>> black = torch.zeros(2, 3, 4, 4)
        >>> y = rgb_to_y(black)
        >>> y.shape, round(y[0, 0, 0, 0].item() * 255, 4)
        (torch.Size([2, 1, 4, 4]), 16.0)
    """
    _check_three_channels(image, "rgb_to_y")
    return _affine(image, _FORWARD_MATRIX[:1], _FORWARD_OFFSET[:1])


def rgb_to_gray(image: Tensor) -> Tensor:
    """Reduce RGB to one full-range luma channel, for comparing with a grayscale ground truth.

    ``gray = (Y - 16/255) * 255/219 = (65.481 R + 128.553 G + 24.966 B) / 219``, i.e. MATLAB's
    Y with the studio-range offset and gain removed, so a neutral pixel ``R = G = B = v`` maps
    back to ``v`` (the coefficients sum to exactly 219). Use it when a network produces RGB but
    the HR image has a single channel (Set14 ``bridge``).

    Args:
        image: float RGB ``[..., 3, H, W]`` in [0, 1].

    Returns:
        Luma ``[..., 1, H, W]`` in [0, 1] for in-range input.

    Example:
        >>> import torch
        >>> grey = torch.full((1, 3, 2, 2), 0.25)
        >>> torch.allclose(rgb_to_gray(grey), torch.full((1, 1, 2, 2), 0.25))
        True
    """
    _check_three_channels(image, "rgb_to_gray")
    # Dividing by 219 directly (rather than subtracting 16/255 from Y) avoids a cancellation
    # that would cost float32 precision near black.
    return _affine(image, _RGB_TO_YCBCR[:1] / _Y_RANGE, torch.zeros(1, dtype=torch.float64))

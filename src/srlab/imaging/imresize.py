"""MATLAB-compatible bicubic ``imresize`` and ``modcrop`` for PyTorch tensors.

The SR literature makes its LR test images with MATLAB's ``imresize(HR, 1/s, 'bicubic')``
(DESIGN.md section 4). PyTorch's bicubic (a = -0.75, no antialiasing, replicate borders)
and PIL's (different border handling and rounding) are not the same, so benchmark numbers
need this re-implementation of MATLAB's algorithm:

* Keys cubic kernel with a = -0.5, support [-2, 2].
* When shrinking (scale < 1) with antialiasing, the kernel is stretched to
  ``scale * cubic(scale * x)`` and its support to ``4 / scale`` input pixels, so that it
  low-pass filters before subsampling.
* Output pixel ``u`` (1-based) sits at input coordinate ``u / scale + 0.5 * (1 - 1 / scale)``
  (pixel centres aligned, not corners).
* Taps falling outside the image are mirrored ("symmetric" padding: ..., 2, 1, 1, 2, ...,
  n, n, n-1, ...) and each output pixel's weights are normalised to sum to one.
* The two spatial dimensions are resized one after the other, the dimension with the
  smallest scale factor first (MATLAB's ``sort(scale)``, stable, so H before W on ties).
  For integer images every pass returns the input's integer class (rounded half away from
  zero and saturated), exactly as MATLAB's ``imresizemex`` does, so the intermediate image
  is quantised too; that is what makes the result bit-exact with MATLAB.

Each dimension's resampling is a dense ``[out_len, in_len]`` matrix (mirrored taps folded
onto the real pixels they read), built once in float64 and cached, so a resize is two
batched matmuls on whatever device the image lives on.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["imresize", "modcrop"]

# MATLAB's bicubic kernel is 4 input pixels wide (support [-2, 2]).
_KERNEL_WIDTH = 4.0


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5, MATLAB's ``cubic`` (same expression)."""
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * ((absx > 1) & (absx <= 2))


@functools.lru_cache(maxsize=128)
def _weight_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """Dense float64 ``[out_len, in_len]`` resampling matrix of MATLAB's ``contributions``.

    The arithmetic follows MATLAB's ``contributions`` line by line in float64, so the tap
    positions and weights (and hence ties in the final rounding) are the same numbers
    MATLAB computes. The cache holds numpy arrays, not tensors: a tensor made while
    ``torch.export`` or ``torch.jit.trace`` runs would be a tracer's and poison later calls.
    The returned array is shared (and read-only).
    """
    if scale < 1 and antialiasing:
        # Stretch the kernel: a low-pass filter matched to the new sampling rate.
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        kernel_width = _KERNEL_WIDTH / scale
    else:
        kernel = _cubic
        kernel_width = _KERNEL_WIDTH

    # 1-based output coordinates mapped into 1-based input coordinates, as in MATLAB.
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    num_taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(num_taps, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Symmetric padding: MATLAB indexes the sequence [1..n, n..1] cyclically.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    real = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]

    # Fold mirrored taps onto the pixel they read. MATLAB drops taps whose weight is zero
    # for every output; in a dense matrix those add nothing, so no special case is needed.
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], real.shape)
    np.add.at(matrix, (rows, real), weights)
    matrix.flags.writeable = False
    return matrix


def _output_size(in_len: int, scale: float) -> int:
    # Same float64 product as MATLAB's ceil(scale .* size), so e.g. 1/3 rounds identically.
    return math.ceil(in_len * scale)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero (MATLAB's ``round``); ``torch.round`` rounds half to even."""
    truncated = torch.trunc(x)
    # x - trunc(x) is exact in floating point, so ties are detected exactly.
    return truncated + torch.sign(x) * ((x - truncated).abs() >= 0.5).to(x.dtype)


def _quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    info = torch.iinfo(dtype)
    return _round_half_away(x).clamp_(info.min, info.max)


def _resize_dim(
    x: torch.Tensor, dim: int, out_len: int, scale: float, antialiasing: bool
) -> torch.Tensor:
    """Resample ``x`` (floating, ``[..., H, W]``) along ``dim`` (-2 or -1) with one matmul."""
    weights = _weight_matrix(x.shape[dim], out_len, scale, antialiasing)
    matrix = torch.tensor(weights, device=x.device, dtype=x.dtype)
    if dim == -2:
        return torch.matmul(matrix, x)  # [out, H] @ [..., H, W] -> [..., out, W]
    return torch.matmul(x, matrix.T)  # [..., H, W] @ [W, out] -> [..., H, out]


def imresize(
    image: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> torch.Tensor:
    """Resize an image with MATLAB's ``imresize(image, scale, 'bicubic')`` algorithm.

    Cubic kernel a = -0.5, kernel widened by ``1 / scale`` when shrinking with
    ``antialiasing`` (MATLAB's default), pixel-centre alignment, symmetric border padding,
    per-pixel weights normalised to one. The dimension with the smaller scale factor is
    resized first (H first on ties), as MATLAB does.

    Integer images (MATLAB's uint8 path) are computed in float64 and rounded half away from
    zero and saturated to the dtype's range after *each* dimension, as MATLAB's
    ``imresizemex`` returns the input class from every pass (rounding only once at the end
    puts 10-15% of the Set5/Set14 LR pixels off, by up to 12 levels). float64, because MATLAB
    accumulates in double and because for scales 1/2 and 1/4 the weights are dyadic
    rationals: float64 holds every product and sum exactly, so the frequent exact ``.5``
    ties (~0.7% of pixels at x2) round exactly as MATLAB rounds them, whatever the summation
    order of the matmul. float32 happens to reproduce the benchmark LR images too, but
    with no such guarantee (its ~1e-5 grey-level errors can flip a near-tie).
    Floating images are computed in their own dtype (float16/bfloat16 in float32) and
    returned unclipped in the input dtype.

    Args:
        image: tensor ``[..., H, W]`` (e.g. ``[H, W]``, ``[C, H, W]``, ``[B, C, H, W]``), any
            device; all leading dimensions are resized alike.
        scale: scale factor for both dimensions; output size ``ceil(H * scale)``,
            ``ceil(W * scale)`` as in MATLAB. Exactly one of ``scale`` and ``size``.
        size: output size ``(out_h, out_w)``; the scale factors are then ``out_h / H`` and
            ``out_w / W``.
        antialiasing: widen the kernel when shrinking (MATLAB's ``'Antialiasing'``, default
            true). Has no effect when enlarging.

    Returns:
        Tensor ``[..., out_h, out_w]`` with the input's dtype and device.

    Example:
        >>> import torch
        >>> hr = torch.randint(0, 256, (3, 6, 9), dtype=torch.uint8)
        >>> lr = imresize(hr, scale=1 / 3)
        >>> lr.shape, lr.dtype
        (torch.Size([3, 2, 3]), torch.uint8)
        >>> imresize(torch.rand(1, 1, 5, 7), size=(10, 14)).shape
        torch.Size([1, 1, 10, 14])
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of `scale` and `size`")
    if image.ndim < 2:
        raise ValueError(f"expected an image [..., H, W], got shape {tuple(image.shape)}")
    in_h, in_w = image.shape[-2:]
    if in_h < 1 or in_w < 1:
        raise ValueError(f"cannot resize an empty image of shape {tuple(image.shape)}")

    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_size = (_output_size(in_h, scales[0]), _output_size(in_w, scales[1]))
    else:
        out_size = (int(size[0]), int(size[1]))
        if out_size[0] < 1 or out_size[1] < 1:
            raise ValueError(f"size must be positive, got {size}")
        scales = (out_size[0] / in_h, out_size[1] / in_w)

    dtype = image.dtype
    if dtype == torch.bool or dtype.is_complex:
        raise TypeError(f"unsupported image dtype {dtype}")
    is_integer = not dtype.is_floating_point
    if is_integer:
        work_dtype = torch.float64
    elif dtype in (torch.float16, torch.bfloat16):
        work_dtype = torch.float32
    else:
        work_dtype = dtype

    x = image.to(work_dtype)
    # MATLAB's sort(scale) is stable: the most-reduced dimension first, H first on ties.
    order = (-2, -1) if scales[0] <= scales[1] else (-1, -2)
    for dim in order:
        axis = dim + 2  # index into the (H, W) pair
        x = _resize_dim(x, dim, out_size[axis], scales[axis], antialiasing)
        if is_integer:
            x = _quantize(x, dtype)
    return x.to(dtype)


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``image [..., H, W]`` to ``[..., H - H % scale, W - W % scale]`` (top-left kept).

    The SR benchmarks' HR reference: the LR image of scale ``s`` is ``imresize(modcrop(HR, s),
    scale=1 / s)``, so that HR is exactly ``s`` times the LR size.

    Args:
        image: tensor ``[..., H, W]``.
        scale: the integer SR scale factor.

    Returns:
        A view of ``image`` with both spatial sizes divisible by ``scale``.

    Example:
        >>> import torch
        >>> modcrop(torch.zeros(3, 257, 130), 4).shape
        torch.Size([3, 256, 128])
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    height, width = image.shape[-2:]
    return image[..., : height - height % scale, : width - width % scale]

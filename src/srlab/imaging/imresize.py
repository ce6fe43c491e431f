"""MATLAB-compatible bicubic ``imresize`` and ``modcrop`` for PyTorch tensors.

The SR literature makes its LR test images with MATLAB's ``imresize(HR, 1/s, 'bicubic')``.
PyTorch's bicubic (a = -0.75, no antialiasing, replicate borders) and PIL's (different
border handling and rounding) are not the same, so benchmark numbers need this
re-implementation of MATLAB's algorithm (``tests/test_imresize.py`` checks it bit for bit
against the Set5/Set14 LR images MATLAB made):

* Keys cubic kernel with a = -0.5, support [-2, 2].
* When shrinking (scale < 1) with antialiasing, the kernel is stretched to
  ``scale * cubic(scale * x)`` and its support to ``4 / scale`` input pixels, so that it
  low-pass filters before subsampling.
* Output pixel ``u`` (1-based) sits at input coordinate ``u / scale + 0.5 * (1 - 1 / scale)``
  (pixel centres aligned, not corners). It reads the ``ceil(kernel width) + 2`` input pixels
  from ``floor(centre - kernel width / 2)`` on (MATLAB's ``contributions``).
* Taps falling outside the image are mirrored ("symmetric" padding: ..., 2, 1, 1, 2, ...,
  n, n, n-1, ...) and each output pixel's weights are normalised to sum to one.
* The two spatial dimensions are resized one after the other, the dimension with the
  smallest scale factor first (MATLAB's ``sort(scale)``, stable, so H before W on ties).
  For integer images every pass returns the input's integer class (rounded half away from
  zero and saturated), exactly as MATLAB's ``imresizemex`` does, so the intermediate image
  is quantised too; that is what makes the result bit-exact with MATLAB.

How it is computed: sparsely, in torch only (any device, ``torch.compile``, ONNX and
TorchScript exports with dynamic sizes of the networks that call it). The only Python numbers
are the scale factors; tap positions and weights are computed in torch from the (possibly
symbolic or traced) sizes. Each pass is one of:

* Banded blocks (any scale; always for H): MATLAB's per-output taps and weights, computed
  in float64 (:func:`_contributions`). The outputs go in blocks of 16; the taps of a block
  lie in one window of consecutive input pixels (about ``16 / scale`` plus the taps), so
  one ``index_select`` of the mirrored window indices gathers every block's window and one
  batched matmul with a ``[16, window]`` weight matrix per block does the weighted sums.
* Integer upscale along W (``out = s * W``, ``s >= 2``: every SR network's bicubic): the
  weights repeat with period ``s``, so the pass is a convolution over the symmetrically
  padded rows with ``s`` output channels, one per phase (4 taps each); written with
  channels-last strides, its output already is the interleaved ``[..., s * W]`` row.

Both cost a fixed number of multiply-adds per output pixel (the dense matrices this replaced,
kept in ``tests/test_imresize.py`` as the reference and timed by ``benchmarks/imresize_speed.py``,
cost the input length). Only the order of the float64 sums differs from them: exact for the
dyadic scales 1/2, 1/4, 2, 4 (integer results equal bit for bit); elsewhere a rounding can
differ only at an exact ``.5`` tie with non-dyadic weights.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

__all__ = ["imresize", "modcrop"]

# MATLAB's bicubic kernel is 4 input pixels wide (support [-2, 2]).
_KERNEL_WIDTH = 4.0


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel with a = -0.5, MATLAB's ``cubic`` (same expression)."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (absx <= 1).to(x.dtype)
    outer = ((absx > 1) & (absx <= 2)).to(x.dtype)
    return (1.5 * absx3 - 2.5 * absx2 + 1) * inner + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * outer


def _cubic_scalar(x: float) -> float:
    """:func:`_cubic` of one Python float (the same float64 arithmetic)."""
    absx = abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * (1 < absx <= 2)


def _kernel_width(scale: float, antialiasing: bool) -> float:
    return _KERNEL_WIDTH / scale if scale < 1 and antialiasing else _KERNEL_WIDTH


def _num_taps(scale: float, antialiasing: bool) -> int:
    """Input pixels each output pixel reads: MATLAB's ``ceil(kernel_width) + 2``."""
    return math.ceil(_kernel_width(scale, antialiasing)) + 2


def _mirror(index: torch.Tensor, length: int | torch.Tensor) -> torch.Tensor:
    """Symmetric padding of 0-based indices: MATLAB reads ``[1..n, n..1]`` cyclically."""
    if isinstance(length, torch.SymInt):  # torch.export: ONNX's Mod takes no symbolic scalar
        length = torch.full((), length, dtype=index.dtype, device=index.device)
    period = torch.remainder(index, 2 * length)
    return torch.where(period < length, period, 2 * length - 1 - period)


# -- any scale: banded blocks of taps ------------------------------------------------------

# Outputs per block of the banded path: each block of consecutive outputs reads one window of
# consecutive (mirrored) input pixels, and one small matmul combines them.
_BLOCK = 16


def _contributions(
    out_len: int | torch.Tensor,
    scale: float,
    antialiasing: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: first tap and weights of outputs ``1 .. out_len``.

    Returns the 1-based input index of each output's first tap (``[out_len]``, int64; tap
    ``t`` reads ``first + t``, mirrored) and the normalised weights (``[out_len, taps]``).
    The arithmetic follows MATLAB's line by line in ``dtype`` (float64 but on MPS), so the
    tap positions and weights, and hence the ties of the final rounding, are the numbers
    MATLAB computes. ``out_len`` may be symbolic (``torch.export``) or traced
    (``torch.jit``): only ``scale`` has to be a Python number.
    """
    kernel_width = _kernel_width(scale, antialiasing)
    num_taps = _num_taps(scale, antialiasing)
    # 1-based output coordinates mapped into 1-based input coordinates, as in MATLAB.
    x = torch.arange(1, out_len + 1, dtype=dtype, device=device)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = left[:, None] + torch.arange(num_taps, dtype=dtype, device=device)
    if scale < 1 and antialiasing:
        # Stretch the kernel: a low-pass filter matched to the new sampling rate.
        weights = scale * _cubic(scale * (u[:, None] - taps))
    else:
        weights = _cubic(u[:, None] - taps)
    return left.long(), weights / weights.sum(dim=1, keepdim=True)


def _resize_banded(
    x: torch.Tensor,
    dim: int,
    out_len: int | torch.Tensor,
    scale: float,
    antialiasing: bool,
    weight_dtype: torch.dtype,
) -> torch.Tensor:
    """Resample ``x [R, 1, H, W]`` along ``dim`` (-2 or -1) to ``out_len``, any scale.

    The outputs go in blocks of :data:`_BLOCK`; block ``j``'s taps all lie in a window of
    ``span`` consecutive input pixels from its first output's first tap. One gather
    (``index_select`` of the mirrored window indices) reads every block's window, a
    ``[block, span]`` weight matrix per block (MATLAB's per-output weights, scattered to
    their taps' places in the window) combines it, in one batched matmul. Cost per output:
    ``span`` (about ``16 / scale`` + taps) multiply-adds, whatever the image size.
    """
    num_taps = _num_taps(scale, antialiasing)
    # left grows by at most ceil((_BLOCK - 1) / scale) within a block; +1 for float rounding.
    span = math.ceil((_BLOCK - 1) / scale) + num_taps + 1
    blocks_len = (out_len + _BLOCK - 1) // _BLOCK * _BLOCK  # whole blocks; cropped below
    first, weights = _contributions(blocks_len, scale, antialiasing, x.device, weight_dtype)
    first = first.view(-1, _BLOCK)  # [blocks, _BLOCK]
    start = first[:, :1]  # 1-based first input pixel of each block's window
    # Where each output's taps sit in its block's window; scatter the weights there.
    column = (first - start).view(-1, 1) + torch.arange(num_taps, device=x.device)
    local = torch.zeros(blocks_len, span, dtype=x.dtype, device=x.device)
    local = local.scatter(1, column, weights.to(x.dtype)).view(-1, _BLOCK, span)
    window = _mirror(start - 1 + torch.arange(span, device=x.device), x.shape[dim])
    # Gather whole rows: along W through the transposed view (rows are faster to gather than
    # single elements), the result transposed back as a view.
    rows = x if dim == -2 else x.transpose(-1, -2)
    gathered = rows.index_select(-2, window.flatten()).unflatten(-2, (-1, span))
    out = torch.matmul(local, gathered)  # [R, 1, blocks, _BLOCK, cols]
    out = out.flatten(-3, -2)[..., :out_len, :]
    return out if dim == -2 else out.transpose(-1, -2)


# -- integer upscale along W: a convolution whose channels are the phases --------------------


def _upscale_taps(factor: int) -> tuple[int, list[list[float]]]:
    """MATLAB's weights of an integer upscale by ``factor``, as a ``[factor, window]`` table.

    The weights repeat with period ``factor``: output ``factor * i + p`` (0-based) reads
    input pixels ``i + first + k`` with weight ``table[p][k]``, ``k`` in ``[0, window)``.
    Computed from MATLAB's ``contributions`` for the first ``factor`` outputs in Python
    floats (float64, the same expressions), columns that are zero for every phase dropped
    (MATLAB drops them too): 4 taps per phase in a window of 5. For factors 2 and 4 every
    number involved is a short dyadic fraction, so the table holds exactly the weights
    MATLAB computes for every output; for other factors MATLAB's later outputs differ from
    the first period by the float64 rounding of their position (relative 1e-16 times the
    output index), which this leaves out.
    """
    scale = float(factor)
    num_taps = _num_taps(scale, True)
    rows: list[dict[int, float]] = []
    for x in range(1, factor + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - _KERNEL_WIDTH / 2)
        weights = [_cubic_scalar(u - (left + t)) for t in range(num_taps)]
        total = sum(weights)
        # The 0-based input index of tap t of output x is left + t - 1.
        rows.append({left + t - 1: w / total for t, w in enumerate(weights)})
    used = sorted({j for row in rows for j, w in row.items() if w != 0})
    first, last = used[0], used[-1]
    return first, [[row.get(j, 0.0) for j in range(first, last + 1)] for row in rows]


def _upscale_padding(factor: int) -> tuple[int, int]:
    """Pixels of symmetric padding before and after W that :func:`_upscale_width` reads."""
    first, table = _upscale_taps(factor)
    # first <= 0 for any factor >= 2: the first output reads the pixels before it.
    return -first, first + len(table[0]) - 1


def _pad_symmetric(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """Pad ``x`` along ``dim`` the MATLAB way (mirrored, edge pixel repeated), any length."""
    length = x.shape[dim]
    parts = []
    if before > 0:
        index = _mirror(torch.arange(-before, 0, device=x.device), length)
        parts.append(x.index_select(dim, index))
    parts.append(x)
    if after > 0:
        index = _mirror(torch.arange(after, device=x.device) + length, length)
        parts.append(x.index_select(dim, index))
    return torch.cat(parts, dim=dim)


def _constant(values: list[list[float]], like: torch.Tensor) -> torch.Tensor:
    """``values`` as a tensor of ``like``'s dtype and device.

    A constant of the trace under ``torch.jit.trace``, as it should be: its warning that
    ``torch.tensor`` is recorded as a constant is silenced.
    """
    if not torch.jit.is_tracing():
        return torch.tensor(values, dtype=like.dtype, device=like.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.tensor(values, dtype=like.dtype, device=like.device)


def _upscale_width(padded: torch.Tensor, factor: int) -> torch.Tensor:
    """Upscale ``padded [R, 1, H, W + padding]`` by ``factor`` along W, to ``[R, 1, H, s*W]``.

    ``padded`` is the image padded by :func:`_upscale_padding` along W. One convolution
    with ``factor`` output channels, phase ``p`` in channel ``p``; channels-last strides
    (the same bytes for one channel) make it write ``[R, H, W, factor]`` in memory, which
    is the interleaved output, so the permute and flatten after it are views.
    """
    _, table = _upscale_taps(factor)
    weight = _constant(table, padded)
    channels_last = padded[:, 0, :, :, None].permute(0, 3, 1, 2)
    out = F.conv2d(channels_last, weight[:, None, None, :])  # [R, factor, H, W]
    return out.permute(0, 2, 3, 1).flatten(2).unsqueeze(1)


# -- sizes and scales ----------------------------------------------------------------------


def _integer_factor(scale: float) -> int | None:
    """``scale`` as an int when it is a whole number >= 2 (an integer upscale), else None."""
    return int(scale) if scale >= 2 and scale == math.floor(scale) else None


def _ratio(out_len, in_len) -> float:
    """``out_len / in_len`` as a Python float, for concrete, traced or symbolic sizes.

    An integer multiple (``out = s * in``: the networks' upscale) is recognised without
    fixing the sizes: ``torch.export`` proves ``Mod(s*h, h) == 0`` symbolically, and a
    ``torch.jit`` trace takes a ratio of traced sizes that is an integer as the same at
    every size (:func:`imresize` then checks it at run time: the output of ``s * size`` is
    reshaped to the requested size, which fails where it differs). Any other ratio of
    non-concrete sizes is fixed to the example's (a trace warns; an export specialises or
    fails).
    """
    if isinstance(out_len, int) and isinstance(in_len, int):
        return out_len / in_len
    if isinstance(out_len, torch.Tensor):  # traced, and derived from the traced sizes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            is_multiple = bool(out_len % in_len == 0)
            if is_multiple:
                return float(int(out_len // in_len))
        return float(out_len) / float(in_len)  # size-specific: let the tracer warn
    if out_len % in_len == 0:
        return float(out_len // in_len)
    return float(out_len / in_len)


def _output_len(in_len, scale: float):
    """MATLAB's ``ceil(scale * size)`` (the same float64 product, so e.g. 1/3 rounds alike)."""
    if isinstance(in_len, torch.Tensor):  # traced size: keep the trace dynamic
        return torch.ceil(in_len.to(torch.float64) * scale).long()
    if isinstance(in_len, torch.SymInt):
        # torch.export: integer arithmetic that it can reason about, where it is the same.
        if scale == math.floor(scale):
            return in_len * int(scale)
        if 1 / round(1 / scale) == scale:
            return (in_len + round(1 / scale) - 1) // round(1 / scale)
    return math.ceil(in_len * scale)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round half away from zero (MATLAB's ``round``); ``torch.round`` rounds half to even."""
    truncated = torch.trunc(x)
    # x - trunc(x) is exact in floating point, so ties are detected exactly.
    return truncated + torch.sign(x) * ((x - truncated).abs() >= 0.5).to(x.dtype)


def _quantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    info = torch.iinfo(dtype)
    return _round_half_away(x).clamp(info.min, info.max)


def imresize(
    image: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> torch.Tensor:
    """Resize an image with MATLAB's ``imresize(image, scale, 'bicubic')`` algorithm.

    The algorithm and how it is computed are in the module docstring.

    Integer images (MATLAB's uint8 path) are computed in float64 and rounded half away from
    zero and saturated to the dtype's range after *each* dimension, as MATLAB's
    ``imresizemex`` returns the input class from every pass (rounding only once at the end
    puts 10-15% of the Set5/Set14 LR pixels off, by up to 12 levels). float64, because MATLAB
    accumulates in double and because for scales 1/2, 1/4, 2 and 4 the weights are dyadic
    rationals: float64 holds every product and sum exactly, so the frequent exact ``.5``
    ties (~0.7% of pixels at x2) round exactly as MATLAB rounds them, whatever the order in
    which the taps are summed. float32 happens to reproduce the benchmark LR images too, but
    with no such guarantee (its ~1e-5 grey-level errors can flip a near-tie). On Apple MPS,
    which has no float64, integer images are computed in float32.
    Floating images are computed in their own dtype (float16/bfloat16 in float32) and
    returned unclipped in the input dtype.

    Traceable: under ``torch.compile``, ``torch.export``/ONNX and ``torch.jit.trace`` the
    sizes stay dynamic wherever the scale factor does not depend on them, as with
    ``size=(s * H, s * W)`` for an integer ``s`` (what the SR networks ask for) or a fixed
    ``scale``.

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
    concrete = isinstance(in_h, int) and isinstance(in_w, int)
    if concrete and (in_h < 1 or in_w < 1):
        raise ValueError(f"cannot resize an empty image of shape {tuple(image.shape)}")

    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_size = (_output_len(in_h, scales[0]), _output_len(in_w, scales[1]))
    else:
        out_size = (size[0], size[1])
        if all(isinstance(v, int) for v in out_size) and min(out_size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        scales = (_ratio(out_size[0], in_h), _ratio(out_size[1], in_w))
    # The passes make the size MATLAB's ceil(scale * size) gives; under a trace an integer
    # ratio taken as the same at every size yields s * size, and the reshape to the
    # requested size at the end then fails where that assumption does not hold.
    pass_size = tuple(
        length * int(ratio)
        if isinstance(requested, torch.Tensor) and ratio == math.floor(ratio)
        else requested
        for length, requested, ratio in zip((in_h, in_w), out_size, scales, strict=True)
    )

    dtype = image.dtype
    if dtype == torch.bool or dtype.is_complex:
        raise TypeError(f"unsupported image dtype {dtype}")
    is_integer = not dtype.is_floating_point
    # float64 for the weights and integer images, except on MPS, which has no float64.
    exact_dtype = torch.float32 if image.device.type == "mps" else torch.float64
    if is_integer:
        work_dtype = exact_dtype
    elif dtype in (torch.float16, torch.bfloat16):
        work_dtype = torch.float32
    else:
        work_dtype = dtype

    # One layout for both passes: [R, 1, H, W], R the product of the leading dimensions.
    x = image.to(work_dtype).reshape(-1, 1, in_h, in_w)
    width_factor = _integer_factor(scales[1])
    if width_factor is not None:
        # Pad W for its convolution now: mirroring W commutes with the H pass (and with its
        # rounding), and padding the input is cheaper than padding the H pass's output.
        x = _pad_symmetric(x, -1, *_upscale_padding(width_factor))
    # MATLAB's sort(scale) is stable: the most-reduced dimension first, H first on ties.
    order = (-2, -1) if scales[0] <= scales[1] else (-1, -2)
    for dim in order:
        axis = dim + 2  # index into the (H, W) pairs
        if scales[axis] == 1:
            continue  # MATLAB's weights are exactly [0, 1, 0, ...]: the identity
        if dim == -1 and width_factor is not None:
            x = _upscale_width(x, width_factor)
        else:
            x = _resize_banded(x, dim, pass_size[axis], scales[axis], antialiasing, exact_dtype)
        if is_integer:
            x = _quantize(x, dtype)
    # The requested size, not x's: equal, but under a trace a mismatch then fails loudly.
    return x.reshape(image.shape[:-2] + tuple(out_size)).to(dtype).contiguous()


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

"""Tests of the MATLAB-compatible bicubic ``imresize``.

Three kinds of evidence: the benchmark LR images made by MATLAB (Set5/Set14, bit-exact),
an independent per-pixel reference written from MATLAB's definition, and properties.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.imaging.imresize import imresize, modcrop

# --- an independent, slow, per-pixel reference ------------------------------------------


def _ref_cubic(t: float) -> float:
    """Keys cubic, a = -0.5."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def _ref_reflect(j: int, n: int) -> int:
    """Symmetric padding of a 0-based index: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..."""
    j %= 2 * n
    return j if j < n else 2 * n - 1 - j


def _ref_resize_rows(a: np.ndarray, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """Resample axis 0 of ``a``, one output row at a time."""
    n = a.shape[0]
    widen = scale < 1 and antialiasing
    half_support = 2 / scale if widen else 2.0
    out = np.zeros((out_len, *a.shape[1:]), dtype=np.float64)
    for o in range(out_len):
        # Centre of output pixel o in 0-based input coordinates (pixel centres aligned).
        centre = (o + 0.5) / scale - 0.5
        taps = range(math.floor(centre - half_support), math.ceil(centre + half_support) + 1)
        if widen:
            weights = [scale * _ref_cubic(scale * (centre - j)) for j in taps]
        else:
            weights = [_ref_cubic(centre - j) for j in taps]
        total = sum(weights)
        for j, w in zip(taps, weights, strict=True):
            out[o] += (w / total) * a[_ref_reflect(j, n)]
    return out


def _ref_imresize(
    image: np.ndarray, out_h: int, out_w: int, scale_h: float, scale_w: float, aa: bool = True
) -> np.ndarray:
    """Reference on ``[H, W, ...]`` arrays; uint8 is rounded after each pass like MATLAB."""
    x = image.astype(np.float64)

    def resize_h(a: np.ndarray) -> np.ndarray:
        return _ref_resize_rows(a, out_h, scale_h, aa)

    def resize_w(a: np.ndarray) -> np.ndarray:
        return np.swapaxes(_ref_resize_rows(np.swapaxes(a, 0, 1), out_w, scale_w, aa), 0, 1)

    passes = [resize_h, resize_w] if scale_h <= scale_w else [resize_w, resize_h]
    for resize in passes:
        x = resize(x)
        if image.dtype == np.uint8:
            x = np.clip(np.floor(x + 0.5), 0, 255)
    return x.astype(image.dtype)


# (H, W, scale or None, size or None, antialiasing)
REFERENCE_CASES = [
    (12, 16, 1 / 2, None, True),
    (13, 9, 1 / 3, None, True),
    (17, 11, 1 / 4, None, True),
    (11, 14, 0.37, None, True),
    (10, 13, 0.7, None, True),
    (9, 7, 1 / 2, None, False),
    (5, 7, 2.0, None, True),
    (4, 6, 3.0, None, True),
    (6, 5, 1.7, None, True),
    (13, 9, None, (5, 20), True),  # H shrinks, W grows: W is resized second
    (9, 13, None, (20, 5), True),  # W shrinks: W is resized first
    (1, 6, None, (3, 3), True),  # a single row mirrors onto itself
]


def _case_size(h: int, w: int, scale: float | None, size: tuple[int, int] | None):
    if size is not None:
        return size, (size[0] / h, size[1] / w)
    return (math.ceil(h * scale), math.ceil(w * scale)), (scale, scale)


@pytest.mark.parametrize(("h", "w", "scale", "size", "aa"), REFERENCE_CASES)
def test_matches_reference_float64(h, w, scale, size, aa):
    rng = np.random.default_rng(h * 100 + w)
    image = rng.random((h, w, 2))
    (out_h, out_w), (sh, sw) = _case_size(h, w, scale, size)
    expected = _ref_imresize(image, out_h, out_w, sh, sw, aa)
    got = imresize(
        torch.from_numpy(image).permute(2, 0, 1), scale=scale, size=size, antialiasing=aa
    )
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("h", "w", "scale", "size", "aa"), REFERENCE_CASES)
def test_matches_reference_uint8(h, w, scale, size, aa):
    rng = np.random.default_rng(h * 100 + w + 1)
    image = rng.integers(0, 256, (h, w), dtype=np.uint8)
    (out_h, out_w), (sh, sw) = _case_size(h, w, scale, size)
    expected = _ref_imresize(image, out_h, out_w, sh, sw, aa)
    got = imresize(torch.from_numpy(image), scale=scale, size=size, antialiasing=aa)
    np.testing.assert_array_equal(got.numpy(), expected)


# --- MATLAB's own output: the benchmark LR images -----------------------------------------

SETS = {"Set5": 5, "Set14": 14}


def _load(path: Path) -> torch.Tensor:
    """PNG -> uint8 tensor [C, H, W] (RGB) or [H, W] (mode L, Set14's bridge)."""
    array = np.array(Image.open(path))
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor


@functools.cache
def _lr_differences(root: str, set_name: str, scale: int) -> dict[str, np.ndarray]:
    """|imresize(modcrop(HR)) - stored LR| per image, computed once per set and scale."""
    set_dir = Path(root) / "benchmarks" / set_name
    diffs = {}
    for hr_path in sorted((set_dir / "HR").glob("*.png")):
        hr = modcrop(_load(hr_path), scale)
        lr = _load(set_dir / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png")
        ours = imresize(hr, scale=1 / scale)
        assert ours.dtype == torch.uint8
        assert ours.shape == lr.shape, (hr_path.stem, ours.shape, lr.shape)
        diffs[hr_path.stem] = (ours.to(torch.int16) - lr.to(torch.int16)).abs().numpy()
    return diffs


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("set_name", list(SETS))
def test_benchmark_lr_within_one_level(shared_data, set_name, scale):
    diffs = _lr_differences(str(shared_data), set_name, scale)
    assert len(diffs) == SETS[set_name]
    pixels = sum(d.size for d in diffs.values())
    within = sum(int((d <= 1).sum()) for d in diffs.values()) / pixels
    max_diff = max(int(d.max()) for d in diffs.values())
    assert within >= 0.99, f"{set_name} x{scale}: {within:.4%} within 1 level, max {max_diff}"


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("set_name", list(SETS))
def test_benchmark_lr_bit_exact(shared_data, set_name, scale):
    # Stronger than the 1-level check: per-pass uint8 rounding, half away from zero,
    # reproduces MATLAB's files exactly (half-to-even rounding would miss ~0.7% at x2).
    diffs = _lr_differences(str(shared_data), set_name, scale)
    off = {name: int((d != 0).sum()) for name, d in diffs.items() if d.any()}
    assert not off, f"{set_name} x{scale}: pixels differing from MATLAB per image: {off}"


# --- properties --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.6, 1.5, 3.0])
def test_constant_image_stays_constant(scale):
    flat = torch.full((2, 11, 9), 0.3, dtype=torch.float64)
    out = imresize(flat, scale=scale)
    torch.testing.assert_close(out, torch.full_like(out, 0.3), rtol=0, atol=1e-12)
    grey = torch.full((11, 9), 77, dtype=torch.uint8)
    assert (imresize(grey, scale=scale) == 77).all()


def test_leading_dims_are_independent():
    batch = torch.rand(2, 3, 10, 13, dtype=torch.float64)
    out = imresize(batch, scale=0.45)
    assert out.shape == (2, 3, 5, 6)
    for b in range(2):
        torch.testing.assert_close(imresize(batch[b], scale=0.45), out[b], rtol=0, atol=1e-14)
        for c in range(3):
            torch.testing.assert_close(
                imresize(batch[b, c], scale=0.45), out[b, c], rtol=0, atol=1e-14
            )


def test_dtypes_are_kept():
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    assert imresize(image, scale=0.5).dtype == torch.uint8
    assert imresize(image, scale=2.0).dtype == torch.uint8  # overshoot is clipped
    assert imresize(image.float() / 255, scale=0.5).dtype == torch.float32
    assert imresize(image.half(), scale=0.5).dtype == torch.float16


def test_float_output_is_not_clipped():
    # Cubic interpolation overshoots at a step edge; only integer outputs are clipped.
    step = torch.zeros(1, 8, dtype=torch.float64)
    step[:, 4:] = 1.0
    up = imresize(step, size=(1, 32))
    assert up.min() < 0 and up.max() > 1


@pytest.mark.parametrize(
    ("shape", "kwargs", "expected"),
    [
        ((5, 7), {"scale": 1 / 2}, (3, 4)),  # ceil, as MATLAB
        ((6, 9), {"scale": 1 / 3}, (2, 3)),
        ((513, 300), {"scale": 1 / 3}, (171, 100)),
        ((5, 7), {"scale": 2.0}, (10, 14)),
        ((5, 7), {"size": (4, 20)}, (4, 20)),
        ((5, 7), {"size": (5, 7)}, (5, 7)),
    ],
)
def test_output_size(shape, kwargs, expected):
    assert imresize(torch.rand(2, *shape), **kwargs).shape == (2, *expected)


def test_same_size_is_identity():
    image = torch.rand(3, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(imresize(image, size=(7, 5)), image, rtol=0, atol=1e-15)


def test_argument_errors():
    image = torch.rand(4, 4)
    with pytest.raises(ValueError):
        imresize(image)
    with pytest.raises(ValueError):
        imresize(image, scale=0.5, size=(2, 2))
    with pytest.raises(ValueError):
        imresize(image, scale=-1.0)
    with pytest.raises(ValueError):
        imresize(torch.rand(4), scale=0.5)


def test_modcrop():
    image = torch.arange(3 * 257 * 130).reshape(3, 257, 130)
    cropped = modcrop(image, 4)
    assert cropped.shape == (3, 256, 128)
    assert torch.equal(cropped, image[:, :256, :128])
    assert modcrop(torch.zeros(6, 9), 3).shape == (6, 9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    image = torch.randint(0, 256, (2, 3, 40, 36), dtype=torch.uint8)
    out = imresize(image.cuda(), scale=1 / 3)
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), imresize(image, scale=1 / 3))


# --- the dense implementation this one replaced: new == old -------------------------------


def _dense_cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    ) * ((absx > 1) & (absx <= 2))


@functools.cache
def _dense_matrix(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """The previous implementation's float64 [out_len, in_len] resampling matrix."""
    if scale < 1 and antialiasing:

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _dense_cubic(scale * x)

        kernel_width = 4.0 / scale
    else:
        kernel = _dense_cubic
        kernel_width = 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    indices = left[:, None] + np.arange(math.ceil(kernel_width) + 2, dtype=np.float64)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    real = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(matrix, (np.broadcast_to(np.arange(out_len)[:, None], real.shape), real), weights)
    return matrix


def _dense_imresize(image: torch.Tensor, scale=None, size=None, antialiasing=True):
    """The previous implementation of ``imresize`` (two matmuls with dense matrices)."""
    in_h, in_w = image.shape[-2:]
    if scale is not None:
        scales = (float(scale), float(scale))
        out_size = (math.ceil(in_h * scale), math.ceil(in_w * scale))
    else:
        out_size = (int(size[0]), int(size[1]))
        scales = (out_size[0] / in_h, out_size[1] / in_w)
    is_integer = not image.dtype.is_floating_point
    x = image.to(torch.float64 if is_integer else image.dtype)
    for dim in (-2, -1) if scales[0] <= scales[1] else (-1, -2):
        axis = dim + 2
        weights = _dense_matrix(x.shape[dim], out_size[axis], scales[axis], antialiasing)
        matrix = torch.tensor(weights, dtype=x.dtype)
        x = torch.matmul(matrix, x) if dim == -2 else torch.matmul(x, matrix.T)
        if is_integer:
            truncated = torch.trunc(x)
            x = truncated + torch.sign(x) * ((x - truncated).abs() >= 0.5).to(x.dtype)
            x = x.clamp(0, 255)  # uint8, the only integer type these tests use
    return x.to(image.dtype)


DENSE_SIZES = [(17, 23), (31, 9), (45, 37), (48, 36), (1, 6), (2, 3)]
DENSE_SCALES = {"1/2": 1 / 2, "1/3": 1 / 3, "1/4": 1 / 4, "2": 2.0, "3": 3.0, "4": 4.0}
DENSE_SCALES |= {"0.37": 0.37, "1.7": 1.7}


def _dense_case_kwargs(case: str, h: int, w: int) -> dict:
    if case.startswith("scale="):
        return {"scale": DENSE_SCALES[case.removeprefix("scale=")]}
    return {
        "size=(2h,5)": {"size": (2 * h, 5)},  # H grows, W shrinks (W first)
        "size=(7,3w)": {"size": (7, 3 * w)},
        "size=(3h,2w)": {"size": (3 * h, 2 * w)},  # two integer upscales, W first
        "size=(4h,4w)": {"size": (4 * h, 4 * w)},  # the networks' call
        "size=(h//3,2w+1)": {"size": (max(1, h // 3), 2 * w + 1)},
    }[case]


DENSE_CASES = [
    *(f"scale={name}" for name in DENSE_SCALES),
    "size=(2h,5)",
    "size=(7,3w)",
    "size=(3h,2w)",
    "size=(4h,4w)",
    "size=(h//3,2w+1)",
]


@pytest.mark.parametrize("aa", [True, False], ids=["aa", "no_aa"])
@pytest.mark.parametrize("case", DENSE_CASES)
def test_matches_dense_implementation(case: str, aa: bool) -> None:
    generator = torch.Generator().manual_seed(len(case) + aa)
    for h, w in DENSE_SIZES:
        kwargs = _dense_case_kwargs(case, h, w)
        u8 = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
        got = imresize(u8, antialiasing=aa, **kwargs)
        assert torch.equal(got, _dense_imresize(u8, antialiasing=aa, **kwargs)), (h, w)
        image = torch.rand(2, 3, h, w, generator=generator)
        for dtype, atol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
            x = image.to(dtype)
            want = _dense_imresize(x, antialiasing=aa, **kwargs)
            got = imresize(x, antialiasing=aa, **kwargs)
            assert got.dtype == dtype and got.shape == want.shape, (h, w)
            torch.testing.assert_close(got, want, rtol=0, atol=atol, msg=f"{dtype} {h}x{w}")


def test_large_integer_upscale_and_shrink_match_dense() -> None:
    # Sizes past one block of outputs and long enough for float64 positions to drift.
    generator = torch.Generator().manual_seed(7)
    u8 = torch.randint(0, 256, (1, 301, 257), dtype=torch.uint8, generator=generator)
    for kwargs in ({"scale": 3}, {"scale": 4}, {"scale": 1 / 3}, {"scale": 0.37}):
        assert torch.equal(imresize(u8, **kwargs), _dense_imresize(u8, **kwargs)), kwargs


def test_output_is_contiguous():
    image = torch.rand(2, 3, 9, 11)
    for kwargs in ({"scale": 4}, {"scale": 0.37}, {"size": (5, 33)}, {"size": (9, 11)}):
        assert imresize(image, **kwargs).is_contiguous(), kwargs


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit.*")
def test_torch_compile_inductor_matches_eager():
    # The networks' path (integer upscale by size); fullgraph: no graph break. About 12 s of
    # inductor compilation on a 2-core CPU.
    torch._dynamo.reset()
    image = torch.rand(1, 3, 13, 17)
    compiled = torch.compile(imresize, fullgraph=True)
    torch.testing.assert_close(
        compiled(image, size=(52, 68)), imresize(image, size=(52, 68)), rtol=0, atol=1e-6
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit.*")
@pytest.mark.slow(reason="each case is a fresh inductor compilation, ~12 s each on 2 CPU cores")
@pytest.mark.parametrize(
    ("shape", "dtype", "kwargs"),
    [
        ((3, 24, 18), torch.uint8, {"scale": 1 / 3}),
        ((1, 3, 29, 31), torch.float32, {"scale": 0.37}),
        ((1, 3, 11, 7), torch.float32, {"size": (33, 14)}),
    ],
)
def test_torch_compile_inductor_other_paths(shape, dtype, kwargs):
    torch._dynamo.reset()
    generator = torch.Generator().manual_seed(0)
    if dtype == torch.uint8:
        image = torch.randint(0, 256, shape, dtype=dtype, generator=generator)
    else:
        image = torch.rand(shape, generator=generator)
    got = torch.compile(imresize, fullgraph=True)(image, **kwargs)
    torch.testing.assert_close(got, imresize(image, **kwargs), rtol=0, atol=1e-6)

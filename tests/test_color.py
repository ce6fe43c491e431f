"""MATLAB-compatible colour conversion, checked against the formulas written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srlab.imaging.color import rgb_to_gray, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def matlab_rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` for double input, channels first: ``[3, H, W]`` -> ``[3, H, W]``."""
    r, g, b = rgb.astype(np.float64)
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.stack([y, cb, cr]) / 255


@pytest.fixture
def rgb() -> torch.Tensor:
    """A batch of random RGB images plus the corners of the colour cube, float64."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 9, 11, generator=generator, dtype=torch.float64)
    corners = torch.tensor(
        [[r, g, b] for r in (0.0, 1.0) for g in (0.0, 1.0) for b in (0.0, 1.0)],
        dtype=torch.float64,
    )
    images[0, :, 0, :8] = corners.T  # saturated colours exercise the full output range
    return images


def test_rgb_to_ycbcr_matches_matlab_formula(rgb: torch.Tensor) -> None:
    expected = np.stack([matlab_rgb2ycbcr(image) for image in rgb.numpy()])
    np.testing.assert_allclose(rgb_to_ycbcr(rgb).numpy(), expected, rtol=0, atol=1e-12)


def test_rgb_to_ycbcr_float32_matches_matlab_formula(rgb: torch.Tensor) -> None:
    expected = np.stack([matlab_rgb2ycbcr(image) for image in rgb.numpy()])
    result = rgb_to_ycbcr(rgb.float())
    assert result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=1e-6)


def test_known_values_and_range() -> None:
    black, white = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)  # no batch dim is fine too
    assert (rgb_to_ycbcr(black) * 255).flatten().tolist() == pytest.approx([16, 128, 128])
    assert (rgb_to_ycbcr(white) * 255).flatten().tolist() == pytest.approx([235, 128, 128])
    blue = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert (rgb_to_ycbcr(blue)[1] * 255).item() == pytest.approx(240, abs=1e-4)  # Cb max
    assert (rgb_to_ycbcr(red)[2] * 255).item() == pytest.approx(240, abs=1e-4)  # Cr max


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(rgb: torch.Tensor, dtype: torch.dtype) -> None:
    image = rgb.to(dtype)
    back = ycbcr_to_rgb(rgb_to_ycbcr(image))
    assert back.dtype == dtype
    torch.testing.assert_close(back, image, rtol=0, atol=1e-6)


def test_ycbcr_to_rgb_inverts_matlab_formula_without_clipping() -> None:
    # Y at its studio-range extremes with neutral chroma is pure black / white, and values
    # outside the range map outside [0, 1] rather than being clipped.
    luma = torch.tensor([16.0, 235.0, 250.0], dtype=torch.float64) / 255
    neutral = torch.full_like(luma, 128 / 255)
    ycbcr = torch.stack([luma, neutral, neutral])
    rgb = ycbcr_to_rgb(ycbcr.view(3, 1, 3))
    np.testing.assert_allclose(rgb[:, 0, 0].numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(rgb[:, 0, 1].numpy(), 1.0, atol=1e-12)
    assert (rgb[:, 0, 2] > 1.0).all()


def test_rgb_to_y_is_first_channel(rgb: torch.Tensor) -> None:
    y = rgb_to_y(rgb)
    assert y.shape == (2, 1, 9, 11)
    expected = np.stack([matlab_rgb2ycbcr(image)[:1] for image in rgb.numpy()])
    np.testing.assert_allclose(y.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rgb_to_gray_returns_v_for_neutral_pixels(dtype: torch.dtype) -> None:
    values = torch.linspace(0, 1, 256, dtype=dtype).view(1, 1, 16, 16)
    gray = rgb_to_gray(values.expand(1, 3, 16, 16))
    assert gray.shape == (1, 1, 16, 16)
    torch.testing.assert_close(gray, values, rtol=0, atol=1e-6)


def test_rgb_to_gray_is_rescaled_y(rgb: torch.Tensor) -> None:
    expected = (rgb_to_y(rgb) - 16 / 255) * 255 / 219
    torch.testing.assert_close(rgb_to_gray(rgb), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("function", [rgb_to_ycbcr, ycbcr_to_rgb, rgb_to_y, rgb_to_gray])
def test_rejects_wrong_channels_and_integer_input(function) -> None:
    with pytest.raises(ValueError, match=r"\(1, 4, 2, 2\)"):
        function(torch.zeros(1, 4, 2, 2))
    with pytest.raises(TypeError, match="floating"):
        function(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))


def test_kornia_is_full_range_and_differs(rgb: torch.Tensor) -> None:
    """Why srlab does not use kornia: its YCbCr is full-range, not MATLAB's studio range."""
    kornia_color = pytest.importorskip("kornia.color")
    ours = rgb_to_ycbcr(rgb)
    theirs = kornia_color.rgb_to_ycbcr(rgb)
    # Black: MATLAB Y is 16/255, kornia's is 0; the Y channels differ by up to 16 levels.
    assert kornia_color.rgb_to_ycbcr(torch.zeros(1, 3, 1, 1))[0, 0].item() == 0.0
    y_gap = ((ours[:, 0] - theirs[:, 0]) * 255).abs().max().item()
    assert y_gap > 10
    assert not torch.allclose(ours, theirs, atol=1e-3)

"""Y-channel PSNR/SSIM against independent references of the DESIGN section 4 protocol.

The numpy reference below is written from the protocol text, not from srlab's code: quantize,
MATLAB Y (or the gray channel), shave, PSNR with peak 255 and Wang's SSIM with a valid
Gaussian window, per image, then the mean over images.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from skimage.metrics import structural_similarity
from torchmetrics.image import StructuralSimilarityIndexMeasure

from srlab.metrics import PSNRY, SSIMY, psnr_y, quantize, ssim_y, to_y255

# ---------------------------------------------------------------- numpy reference


def ref_y255(image: np.ndarray) -> np.ndarray:
    """One ``[C, H, W]`` float image in [0, 1] -> scoring channel ``[H, W]`` in [0, 255]."""
    levels = np.round(np.clip(image, 0, 1) * 255).astype(np.float64)
    if levels.shape[0] == 1:
        return levels[0]
    r, g, b = levels / 255
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def ref_shave(y: np.ndarray, shave: int) -> np.ndarray:
    return y[shave : y.shape[0] - shave, shave : y.shape[1] - shave]


def ref_psnr(y_sr: np.ndarray, y_hr: np.ndarray) -> float:
    mse = np.mean((y_sr - y_hr) ** 2)
    return 10 * math.log10(255**2 / mse)


def ref_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al.'s ssim_index.m: fspecial('gaussian', 11, 1.5), filter2 'valid'."""
    half = np.arange(11) - 5
    g = np.exp(-(half**2) / (2 * 1.5**2))
    window = np.outer(g, g)
    window /= window.sum()

    def filt(a: np.ndarray) -> np.ndarray:
        return np.einsum("ijkl,kl->ij", sliding_window_view(a, (11, 11)), window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = filt(x), filt(y)
    s_xx = filt(x * x) - mu_x**2
    s_yy = filt(y * y) - mu_y**2
    s_xy = filt(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (s_xx + s_yy + c2)
    )
    return float(ssim_map.mean())


def ref_scores(sr: torch.Tensor, hr: torch.Tensor, shave: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (PSNR, SSIM) of a batch by the numpy reference."""
    psnrs, ssims = [], []
    for s, h in zip(sr.numpy(), hr.numpy(), strict=True):
        y_sr, y_hr = ref_shave(ref_y255(s), shave), ref_shave(ref_y255(h), shave)
        psnrs.append(ref_psnr(y_sr, y_hr))
        ssims.append(ref_ssim(y_sr, y_hr))
    return np.array(psnrs), np.array(ssims)


# ---------------------------------------------------------------- test images


def make_pair(
    batch: int, channels: int, height: int, width: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """An 8-bit HR image and a noisy float SR output (some values outside [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (batch, channels, height, width), generator=generator)
    # Smooth the HR a little so SSIM is far from 0 and 1, like a real photo.
    hr = torch.nn.functional.avg_pool2d(levels.float(), 3, stride=1, padding=1).round() / 255
    noise = 0.04 * torch.randn(hr.shape, generator=generator)
    sr = hr + noise  # float32, not on the 8-bit grid, and clipped by quantize at 0 and 1
    return sr, hr


CASES = [
    pytest.param(3, 2, id="rgb-shave2"),
    pytest.param(3, 3, id="rgb-shave3"),
    pytest.param(3, 4, id="rgb-shave4"),
    pytest.param(1, 3, id="gray-shave3"),
]


# ---------------------------------------------------------------- functional


@pytest.mark.parametrize(("channels", "shave"), CASES)
def test_psnr_and_ssim_match_numpy_reference(channels: int, shave: int) -> None:
    sr, hr = make_pair(3, channels, 30, 37, seed=shave)
    ref_psnrs, ref_ssims = ref_scores(sr, hr, shave)

    psnrs, ssims = psnr_y(sr, hr, shave), ssim_y(sr, hr, shave)
    assert psnrs.shape == ssims.shape == (3,)
    assert psnrs.dtype == ssims.dtype == torch.float64
    np.testing.assert_allclose(psnrs.numpy(), ref_psnrs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ssims.numpy(), ref_ssims, rtol=0, atol=1e-9)
    assert ssims.min() > 0.3 and ssims.max() < 0.99  # a meaningful, not degenerate, range


@pytest.mark.parametrize(("channels", "shave"), CASES)
def test_ssim_matches_skimage(channels: int, shave: int) -> None:
    sr, hr = make_pair(2, channels, 33, 29, seed=10 + shave)
    ours = ssim_y(sr, hr, shave)
    for i in range(2):
        y_sr = ref_shave(ref_y255(sr[i].numpy()), shave)
        y_hr = ref_shave(ref_y255(hr[i].numpy()), shave)
        expected = structural_similarity(
            y_hr,
            y_sr,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ours[i].item() == pytest.approx(expected, abs=1e-6)


def test_torchmetrics_default_ssim_differs_but_its_valid_crop_matches() -> None:
    """Documents the protocol: torchmetrics averages a reflect-padded map; the valid crop matches."""
    sr, hr = make_pair(2, 3, 40, 44, seed=7)
    shave = 4
    y_sr = to_y255(sr)[..., shave:-shave, shave:-shave]
    y_hr = to_y255(hr)[..., shave:-shave, shave:-shave]
    ours = ssim_y(sr, hr, shave)

    default = StructuralSimilarityIndexMeasure(data_range=255.0, reduction="none")
    assert not torch.allclose(default(y_sr, y_hr), ours, rtol=0, atol=1e-5)

    full = StructuralSimilarityIndexMeasure(
        data_range=255.0, reduction="none", return_full_image=True
    )
    _, ssim_map = full(y_sr, y_hr)
    valid = ssim_map[..., 5:-5, 5:-5].flatten(1).mean(dim=1)
    torch.testing.assert_close(valid, ours, rtol=0, atol=1e-5)


def test_gray_images_are_scored_on_their_channel() -> None:
    generator = torch.Generator().manual_seed(3)
    hr_levels = torch.randint(0, 256, (1, 1, 24, 24), generator=generator).double()
    sr_levels = (hr_levels + torch.randint(-3, 4, hr_levels.shape, generator=generator)).clamp(
        0, 255
    )
    assert torch.equal(to_y255(hr_levels / 255), hr_levels)  # no Y transform, no offset
    mse = (sr_levels - hr_levels)[..., 2:-2, 2:-2].square().mean().item()
    expected = 10 * math.log10(255**2 / mse)
    assert psnr_y(sr_levels / 255, hr_levels / 255, 2).item() == pytest.approx(expected, abs=1e-9)


def test_quantization_is_applied() -> None:
    hr = torch.full((1, 3, 16, 16), 128 / 255)
    sr = torch.full((1, 3, 16, 16), 0.5001)  # 127.53 levels, rounds to 128 = hr
    assert psnr_y(sr, hr, 2).item() == math.inf
    assert ssim_y(sr, hr, 2).item() == pytest.approx(1.0, abs=1e-12)

    sr, hr = make_pair(2, 3, 20, 20, seed=5)
    on_grid = quantize(sr) / 255
    assert not torch.equal(on_grid, sr)
    torch.testing.assert_close(psnr_y(sr, hr, 2), psnr_y(on_grid, hr, 2), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim_y(sr, hr, 2), ssim_y(on_grid, hr, 2), rtol=0, atol=1e-12)


def test_quantize_clips_and_rounds() -> None:
    values = torch.tensor([-0.5, 0.0, 0.3 / 255, 0.7 / 255, 0.5001, 1.0, 1.5])
    assert quantize(values).tolist() == [0.0, 0.0, 0.0, 1.0, 128.0, 255.0, 255.0]


def test_identical_images_give_infinite_psnr_and_unit_ssim() -> None:
    _, hr = make_pair(2, 3, 16, 16, seed=1)
    assert torch.isinf(psnr_y(hr, hr, 2)).all()
    torch.testing.assert_close(ssim_y(hr, hr, 2), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("function", [psnr_y, ssim_y])
def test_mismatched_shapes_raise_with_both_shapes(function) -> None:
    sr, hr = torch.rand(1, 3, 20, 22), torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match=r"\(1, 3, 20, 22\).*\(1, 3, 20, 20\)"):
        function(sr, hr, 2)


def re_shape(shape: tuple[int, ...]) -> str:
    """A regex matching ``shape`` as the error messages print it."""
    return str(shape).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("shape", [(1, 2, 16, 16), (1, 4, 16, 16), (3, 16, 16)])
def test_unsupported_channels_raise_with_the_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=re_shape(shape)):
        to_y255(torch.rand(shape))
    with pytest.raises(ValueError, match=re_shape(shape)):
        psnr_y(torch.rand(shape), torch.rand(shape), 0)


def test_too_small_or_bad_shave_raises() -> None:
    image = torch.rand(1, 3, 14, 14)
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(image, image, 2)  # 10x10 left after shaving
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr_y(image, image, 7)
    with pytest.raises(ValueError, match="shave"):
        psnr_y(image, image, -1)
    with pytest.raises(ValueError, match="shave"):
        PSNRY(shave=-1)


# ---------------------------------------------------------------- Metric classes


def test_metrics_average_per_image_values_over_updates() -> None:
    batches = [
        make_pair(2, 3, 24, 30, seed=20),
        make_pair(1, 3, 40, 36, seed=21),  # a different size
        make_pair(3, 1, 28, 28, seed=22),  # and gray images
    ]
    psnr_metric, ssim_metric = PSNRY(shave=3), SSIMY(shave=3)
    ref_psnrs, ref_ssims = [], []
    for sr, hr in batches:
        psnr_metric.update(sr, hr)
        ssim_metric.update(sr, hr)
        psnrs, ssims = ref_scores(sr, hr, 3)
        ref_psnrs.extend(psnrs)
        ref_ssims.extend(ssims)

    assert psnr_metric.count.item() == ssim_metric.count.item() == 6
    assert psnr_metric.compute().item() == pytest.approx(np.mean(ref_psnrs), abs=1e-9)
    assert ssim_metric.compute().item() == pytest.approx(np.mean(ref_ssims), abs=1e-9)

    # The literature's mean of per-image PSNRs, not the PSNR of the pooled error; with unequal
    # image errors the two differ.
    pooled_mse = np.mean([255**2 / 10 ** (p / 10) for p in ref_psnrs])
    assert abs(psnr_metric.compute().item() - 10 * math.log10(255**2 / pooled_mse)) > 1e-3


def test_metric_reset_and_forward() -> None:
    metric = PSNRY(shave=2)
    assert metric.higher_is_better is True
    assert metric.full_state_update is False

    first, second = make_pair(2, 3, 16, 16, seed=30), make_pair(1, 3, 20, 18, seed=31)
    metric.update(*first)
    metric.reset()
    assert metric.count.item() == 0 and metric.sum.item() == 0.0
    assert metric.sum.dtype == torch.float64

    batch_value = metric(*second)  # forward: this batch's mean, and accumulates it
    expected = psnr_y(*second, shave=2).mean()
    torch.testing.assert_close(batch_value, expected)
    torch.testing.assert_close(metric.compute(), expected)


def test_metric_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\).*\(1, 3, 16, 18\)"):
        SSIMY(shave=2).update(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 18))


def test_rgb_protocol_matches_skimage_over_channels() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    torch.manual_seed(0)
    hr = torch.rand(1, 3, 40, 40)
    sr = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    a, b = ((x * 255).round().double()[0].permute(1, 2, 0).numpy()[3:-3, 3:-3] for x in (sr, hr))
    expected_ssim = structural_similarity(
        b, a, data_range=255, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, channel_axis=2,
    )  # fmt: skip
    assert ssim_y(sr, hr, 3, channel="rgb").item() == pytest.approx(expected_ssim, abs=1e-9)
    expected_psnr = peak_signal_noise_ratio(b, a, data_range=255)
    assert psnr_y(sr, hr, 3, channel="rgb").item() == pytest.approx(expected_psnr, abs=1e-9)


def test_round_y_rounds_matlab_style() -> None:
    from srlab.metrics import to_y255

    rgb = torch.tensor([0.2, 0.5, 0.7]).view(1, 3, 1, 1)
    y = to_y255(rgb).item()
    assert to_y255(rgb, round_y=True).item() == np.floor(y + 0.5) != y

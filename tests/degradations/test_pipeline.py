"""The whole chain: deterministic for a seed, the same for a sample alone or in any batch, in
Real-ESRGAN's order of steps, with LR in 8-bit levels at HR / scale."""

from __future__ import annotations

import pytest
import torch

from srlab.data.degradations import RealESRGANDegradation, degradation_config, stack_params
from srlab.data.degradations.jpeg import jpeg
from srlab.data.degradations.kernels import blur, make_kernels, pulse
from srlab.data.degradations.noise import add_noise
from srlab.data.degradations.params import sample_seed
from srlab.data.degradations.resize import resize, scaled_size
from srlab.data.degradations.sharpen import usm_sharpen

SEEDS = [sample_seed(s) for s in range(6)]


@pytest.fixture(scope="module")
def hr() -> torch.Tensor:
    return torch.rand(len(SEEDS), 3, 48, 48, generator=torch.Generator().manual_seed(0))


def test_the_chain_is_deterministic_for_a_seed(hr) -> None:
    degrade = RealESRGANDegradation()
    first, target, params = degrade.degrade_seeds(hr, SEEDS, scale=4)
    again, _, _ = RealESRGANDegradation().degrade_seeds(hr, SEEDS, scale=4)
    assert torch.equal(first, again)
    other, _, _ = degrade.degrade_seeds(hr, [s + 1 for s in SEEDS], scale=4)
    assert not torch.equal(first, other)
    assert first.shape == (len(SEEDS), 3, 12, 12) and target.shape == hr.shape
    assert torch.equal(first, (first * 255).round() / 255)  # 8-bit levels
    assert first.min() >= 0 and first.max() <= 1


def test_a_sample_degrades_alike_alone_and_in_a_batch(hr) -> None:
    degrade = RealESRGANDegradation()
    batch, _, _ = degrade.degrade_seeds(hr, SEEDS, scale=4)
    for index in (0, 3, 5):
        alone, _, _ = degrade.degrade_seeds(hr[index : index + 1], SEEDS[index : index + 1], 4)
        # Grouped convolutions round alike to ~1e-7; after 8-bit rounding a level may flip.
        assert (alone[0] - batch[index]).abs().max() <= 1 / 255 + 1e-6
        assert ((alone[0] - batch[index]).abs() > 1e-6).float().mean() < 0.01


def _reference_chain(hr: torch.Tensor, p: dict, scale: int) -> torch.Tensor:
    """One sample through the steps in Real-ESRGAN's order, written out step by step."""
    x = usm_sharpen(hr)
    side = 21

    def kernel(prefix):
        k = make_kernels(*(p[f"{prefix}{n}"] for n in ("kernel", "ksize", "sigma_x", "sigma_y",
                                                       "theta", "beta", "omega")), side=side)  # fmt: skip
        return k if p[f"{prefix}blur"][0] else pulse(1, side, hr.device)

    x = blur(x, kernel("s1_"))
    x = resize(x, scaled_size(48, 48, float(p["s1_resize"][0])), int(p["s1_resize_mode"][0]))
    x = jpeg(add_noise(x, p, "s1_"), p["s1_jpeg"])
    x = blur(x, kernel("s2_"))
    lr_size = (48 // scale, 48 // scale)
    f = float(p["s2_resize"][0])
    x = resize(x, (int(lr_size[0] * f), int(lr_size[1] * f)), int(p["s2_resize_mode"][0]))
    x = add_noise(x, p, "s2_")
    sinc = make_kernels(torch.tensor([6]), p["final_ksize"], *(torch.zeros(1),) * 4,
                        p["final_omega"], side=side)  # fmt: skip
    sinc = sinc if p["final_sinc"][0] else pulse(1, side, hr.device)
    mode = int(p["final_resize_mode"][0])
    if p["final_resize_first"][0]:
        x = jpeg(blur(resize(x, lr_size, mode), sinc), p["s2_jpeg"])
    else:
        x = blur(resize(jpeg(x, p["s2_jpeg"]), lr_size, mode), sinc)
    return torch.clamp((x * 255).round(), 0, 255) / 255


def test_the_steps_run_in_real_esrgans_order(hr) -> None:
    degrade = RealESRGANDegradation()
    orders = set()
    for index, seed in enumerate(SEEDS):
        params = stack_params([degrade.draw(seed)])
        orders.add(bool(params["final_resize_first"][0]))
        lr, _ = degrade(hr[index : index + 1], params, scale=4)
        expected = _reference_chain(hr[index : index + 1], params, scale=4)
        assert (lr - expected).abs().max() <= 1 / 255 + 1e-6
    assert orders == {True, False}  # both final orders were exercised


def test_sharpening_switches() -> None:
    hr = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = RealESRGANDegradation(degradation_config({"sharpen": {"target": False}}))
    _, target, _ = plain.degrade_seeds(hr, SEEDS[:1], 2)
    assert torch.equal(target, hr)
    _, sharpened, _ = RealESRGANDegradation().degrade_seeds(hr, SEEDS[:1], 2)
    torch.testing.assert_close(sharpened, usm_sharpen(hr))


def test_a_tiny_patch_with_the_strongest_down_resize_still_degrades() -> None:
    # 16 px x 0.15 = 2 px before the second 21-tap blur: edge padding instead of reflection.
    degrade = RealESRGANDegradation()
    params = stack_params([degrade.draw(seed) for seed in SEEDS[:2]])
    params["s1_resize"][:] = 0.15
    params["s2_blur"][:] = 1.0
    params["s2_ksize"][:] = 21
    lr, _ = degrade(torch.rand(2, 3, 16, 16), params, scale=4)
    assert lr.shape == (2, 3, 4, 4) and torch.isfinite(lr).all()

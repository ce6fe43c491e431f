"""Gaussian and Poisson noise against a numpy transcription of BasicSR's
``random_add_gaussian_noise_pt`` / ``random_add_poisson_noise_pt`` given the same random
draws, and the Poisson noise's moments against its distribution."""

from __future__ import annotations

import numpy as np
import torch

from srlab.data.degradations.noise import add_noise, distinct_levels, gaussian_noise


def _params(**values) -> dict[str, torch.Tensor]:
    return {f"s1_{k}": torch.tensor(v) for k, v in values.items()}


def test_gaussian_noise_is_sigma_over_255_standard_normals_then_clipped() -> None:
    image = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    params = _params(gray=[0.0, 1.0], seed=[5, 6], gaussian=[1.0, 1.0],
                     noise_sigma=[12.0, 30.0], poisson_scale=[0.0, 0.0])  # fmt: skip
    out = add_noise(image, params, "s1_")
    normal_colour = torch.randn((3, 9, 11), generator=torch.Generator().manual_seed(5)).numpy()
    normal_gray = torch.randn((1, 9, 11), generator=torch.Generator().manual_seed(6)).numpy()
    x = image.numpy()
    expected = np.stack([
        np.clip(x[0] + normal_colour * 12.0 / 255.0, 0, 1),
        np.clip(x[1] + np.repeat(normal_gray, 3, axis=0) * 30.0 / 255.0, 0, 1),
    ])  # fmt: skip
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-6)
    noise = gaussian_noise(image[1], 30.0, True, 6)
    assert noise.shape == (1, 9, 11)


def test_distinct_levels_are_rounded_up_to_a_power_of_two() -> None:
    image = torch.tensor([0, 1, 2, 3, 4, 250], dtype=torch.float32).reshape(1, 2, 3) / 255
    expected = 2 ** int(np.ceil(np.log2(len(np.unique(np.round(image.numpy() * 255))))))
    assert distinct_levels(image) == expected == 8


def test_poisson_noise_has_the_moments_of_its_distribution() -> None:
    # 40 distinct levels -> v = 64: Poisson(x v) / v has mean x and variance x / v, times scale.
    levels = torch.arange(40, dtype=torch.float32).repeat_interleave(1000) + 100
    image = (levels / 255.0).reshape(1, 1, 200, 200).expand(1, 3, 200, 200).contiguous()
    scale = 2.0
    params = _params(gray=[0.0], seed=[3], gaussian=[0.0], noise_sigma=[0.0], poisson_scale=[scale])
    noise = (add_noise(image, params, "s1_") - image).double()
    x = image.double()
    v = 64
    assert (
        abs(noise.mean().item()) < 3 * scale * (x.mean().item() / v / noise.numel()) ** 0.5 + 1e-4
    )
    variance = (scale**2 * x / v).mean().item()
    assert abs(noise.var().item() / variance - 1) < 0.02


def test_gray_poisson_noise_is_the_same_on_every_channel() -> None:
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)) * 0.5 + 0.25
    params = _params(gray=[1.0], seed=[9], gaussian=[0.0], noise_sigma=[0.0], poisson_scale=[1.0])
    noise = add_noise(image, params, "s1_") - image
    torch.testing.assert_close(noise[0, 0], noise[0, 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(noise[0, 0], noise[0, 2], rtol=0, atol=1e-6)

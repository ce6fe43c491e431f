"""kornia's JPEG codec against Pillow's encoder (libjpeg, 4:2:0, the same IJG tables) at the
same quality, on real photos (Set5 from ../shared/data).

kornia's codec rounds with a cubic-smoothed rounding (it is differentiable) and averages the
chroma with a bilinear antialiasing filter, so it is not bit-exact. Measured on 256 x 256 crops
of Set5 ``baby``, ``bird`` and ``butterfly`` at qualities 30/50/75/95: mean absolute difference
from Pillow's decoded image 0.86-1.89 levels (largest single difference 44.8), PSNR between the
two 39.3-46.8 dB (lowest: butterfly at 30), and kornia's distortion of the original from 0.13
dB larger to 0.88 dB smaller than Pillow's. The test allows a mean of 2 levels, 38.5 dB, and a
distortion within 1.5 dB of Pillow's; and it checks the quality mapping: kornia at quality q
is closer to Pillow at q than to Pillow at q +- 25.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.data.degradations.jpeg import jpeg


def _pillow(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB")).astype(np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def crops(shared_data: Path) -> list[np.ndarray]:
    folder = shared_data / "benchmarks" / "Set5" / "HR"
    return [np.array(Image.open(folder / f"{n}.png").convert("RGB"))[:256, :256]
            for n in ("baby", "bird", "butterfly")]  # fmt: skip


@pytest.mark.parametrize("quality", [30, 50, 75, 95])
def test_kornia_jpeg_is_close_to_pillow_at_the_same_quality(crops, quality: int) -> None:
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    out = jpeg(batch, torch.full((len(crops),), float(quality)))
    assert out.shape == batch.shape and out.min() >= 0 and out.max() <= 1
    for index, image in enumerate(crops):
        ours = out[index].permute(1, 2, 0).double().numpy() * 255
        pillow = _pillow(image, quality)
        assert np.abs(ours - pillow).mean() <= 2.0
        assert _psnr(ours, pillow) >= 38.5
        assert abs(_psnr(ours, image) - _psnr(pillow, image)) <= 1.5
        for other in (quality - 25, quality + 25):
            if 1 <= other <= 100:
                assert _psnr(ours, pillow) > _psnr(ours, _pillow(image, other))


def test_each_image_of_a_batch_gets_its_own_quality(crops) -> None:
    batch = torch.from_numpy(np.stack(crops[:2])).permute(0, 3, 1, 2).float() / 255
    together = jpeg(batch, torch.tensor([30.0, 90.0]))
    alone = torch.cat(
        [jpeg(batch[:1], torch.tensor([30.0])), jpeg(batch[1:], torch.tensor([90.0]))]
    )
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)

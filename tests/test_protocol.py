"""The evaluation protocol reproduces the literature's bicubic numbers on real Set5 / Set14.

The published bicubic baseline (SRCNN / VDSR tables, copied by EDSR, RCAN ...) is computed
on the Y channel alone: Y of the HR image as MATLAB's ``rgb2ycbcr`` gives it for uint8 input
(rounded to 8 bits), LR = ``imresize(Y, 1/s)`` and bicubic = ``imresize(LR, s)`` in floating
point, quantized to 8 bits, ``s`` pixels shaved, PSNR/SSIM per image, mean over images.
srlab's imresize and metrics reproduce Set5's published numbers exactly to the printed
decimals (measured: 33.6614 / 0.92988, 30.3922 / 0.86821, 28.4207 / 0.81037). This copy of
Set14 (from the PAN repository) lands within 0.011 dB / 1e-3 of the published Set14 numbers
(measured: 30.2318 / 0.86865, 27.5405 / 0.77361, 26.0001 / 0.70186), the spread between the
Set14 copies in circulation; Set14's tolerance allows that and no more.

Bicubic upscaling of the RGB LR files instead, scored on the Y of the result (what srlab logs
as ``psnr_bicubic`` next to an RGB network), gives 0.01-0.02 dB more on Set5 (33.678 at x2):
the second test pins that difference so that nobody mistakes one protocol for the other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from srlab.data import get_image_set, list_pairs, load_pair
from srlab.data.datasets import to_tensor
from srlab.imaging import imresize, rgb_to_y
from srlab.metrics import PSNRY, SSIMY, quantize

PUBLISHED_BICUBIC = {  # (PSNR dB, SSIM), from shared/data/README.md
    ("set5", 2): (33.66, 0.9299),
    ("set5", 3): (30.39, 0.8682),
    ("set5", 4): (28.42, 0.8104),
    ("set14", 2): (30.24, 0.8688),
    ("set14", 3): (27.55, 0.7742),
    ("set14", 4): (26.00, 0.7027),
}


def _hr_images(shared_data: Path, name: str, scale: int):
    for pair in list_pairs(get_image_set(name), shared_data / "benchmarks", scale):
        hr, lr = load_pair(pair, scale, channels=None)
        yield to_tensor(hr)[None], to_tensor(lr)[None]


def _y_pipeline_bicubic(shared_data: Path, name: str, scale: int) -> tuple[float, float]:
    psnr, ssim = PSNRY(shave=scale), SSIMY(shave=scale)
    for hr, _ in _hr_images(shared_data, name, scale):
        # MATLAB rgb2ycbcr on uint8 returns uint8: Y rounded to 8 bits; gray stays as it is.
        y_hr = quantize(rgb_to_y(hr)) / 255 if hr.shape[1] == 3 else hr
        y_bicubic = imresize(imresize(y_hr, scale=1 / scale), scale=scale)
        psnr.update(y_bicubic, y_hr)
        ssim.update(y_bicubic, y_hr)
    return psnr.compute().item(), ssim.compute().item()


@pytest.mark.parametrize(("name", "scale"), sorted(PUBLISHED_BICUBIC))
def test_bicubic_baseline_matches_published(shared_data: Path, name: str, scale: int) -> None:
    measured = _y_pipeline_bicubic(shared_data, name, scale)
    published_psnr, published_ssim = PUBLISHED_BICUBIC[(name, scale)]
    if name == "set5":
        assert round(measured[0], 2) == pytest.approx(published_psnr, abs=1e-9), measured
        assert round(measured[1], 4) == pytest.approx(published_ssim, abs=1e-9), measured
    else:
        assert measured[0] == pytest.approx(published_psnr, abs=0.011), measured
        assert measured[1] == pytest.approx(published_ssim, abs=1e-3), measured


def test_rgb_pipeline_bicubic_is_slightly_higher(shared_data: Path) -> None:
    psnr = PSNRY(shave=2)
    for hr, lr in _hr_images(shared_data, "set5", 2):
        psnr.update(imresize(lr, scale=2), hr)
    assert psnr.compute().item() == pytest.approx(33.678, abs=0.001)

"""SRCNN and VDSR given their authors' published weights reproduce the papers' numbers.

The authors' weights are MATLAB files: SRCNN's ``model/9-5-5(ImageNet)/x3.mat`` from its test
code (SRCNN_v1), VDSR's MatConvNet ``VDSR_Official.mat``. Neither is shipped by any package
registry this project can reach, so the check is in two parts:

- Without the weights, every step between the files and the published table is compared with a
  transcription of the authors' MATLAB test code, on random weights laid out as their files
  lay them out and written as real ``.mat`` files: the key layout and filter order
  (``srcnn_matlab``, ``vdsr_matconvnet`` in ``srlab.weights.layouts``), padding (SRCNN's
  ``imfilter(..., 'same', 'replicate')``, VDSR's zero ``'Pad', 1``), the global residual,
  the bicubic pre-upsampling inside the networks, and the test input (``eval.lr_from=y``: the
  HR's Y channel downscaled in floating point, which gives the published bicubic rows exactly).
- With the weights (``SRLAB_SRCNN_WEIGHTS``, ``SRLAB_VDSR_WEIGHTS``), the slow test scores them
  on Set5 and Set14 and compares with the papers' tables.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image
from releases import random_srcnn_mat, random_vdsr_mat

from srlab.app.evaluate import evaluate
from srlab.errors import ConfigError
from srlab.imaging import imresize
from srlab.models.srcnn import SRCNN
from srlab.models.vdsr import VDSR
from srlab.weights import PretrainedError, convert_state_dict, load_pretrained, read_state_dict

# -- the authors' test code, transcribed ----------------------------------------------------------


def imfilter_replicate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """MATLAB's ``imfilter(x, h, 'same', 'replicate')`` of every input plane, summed per output.

    ``x`` [C, H, W], ``h`` [K, C, f, f] -> [K, H, W]: a correlation (imfilter's default) with
    the kernel centred and the border replicated (``np.pad(mode='edge')``).
    """
    size, radius = h.shape[-1], h.shape[-1] // 2
    height, width = x.shape[1:]
    padded = np.pad(x, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    out = np.zeros((h.shape[0], height, width))
    for u in range(size):
        for v in range(size):
            out += np.tensordot(h[:, :, u, v], padded[:, u : u + height, v : v + width], axes=1)
    return out


def srcnn_m(model: dict[str, np.ndarray], im_b: np.ndarray) -> np.ndarray:
    """``SRCNN.m`` of SRCNN_v1 on a bicubic-upscaled Y image ``im_b`` [H, W].

    Filter ``i`` of conv1 is ``reshape(weights_conv1(:, i), f1, f1)``, the filter from input
    ``j`` to output ``i`` of conv2 ``reshape(weights_conv2(j, :, i), f2, f2)``, filter ``i`` of
    conv3 ``reshape(weights_conv3(i, :), f3, f3)``; MATLAB's reshape fills columns first
    (``order='F'``). Every layer filters with ``imfilter(..., 'same', 'replicate')``.
    """
    w1, w2, w3 = (model[f"weights_conv{i}"] for i in (1, 2, 3))
    b1, b2, b3 = (model[f"biases_conv{i}"].ravel() for i in (1, 2, 3))
    f1, f2, f3 = (math.isqrt(n) for n in (w1.shape[0], w2.shape[1], w3.shape[1]))
    n1, n2 = w1.shape[1], w2.shape[2]
    h1 = np.empty((n1, 1, f1, f1))
    h2 = np.empty((n2, n1, f2, f2))
    h3 = np.empty((1, n2, f3, f3))
    for i in range(n1):
        h1[i, 0] = w1[:, i].reshape(f1, f1, order="F")
    for i in range(n2):
        h3[0, i] = w3[i, :].reshape(f3, f3, order="F")
        for j in range(n1):
            h2[i, j] = w2[j, :, i].reshape(f2, f2, order="F")
    conv1 = np.maximum(imfilter_replicate(im_b[None], h1) + b1[:, None, None], 0)
    conv2 = np.maximum(imfilter_replicate(conv1, h2) + b2[:, None, None], 0)
    return imfilter_replicate(conv2, h3)[0] + b3[0]


def vl_nnconv_pad1(x: np.ndarray, f: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MatConvNet's ``vl_nnconv(x, f, b, 'Pad', 1)``: x [H, W, D], f [kh, kw, D, K], zero padding.

    ``y(i, j, k) = b(k) + sum_{u, v, d} f(u, v, d, k) x(i + u - 1, j + v - 1, d)`` (a correlation).
    """
    f = f.reshape(*f.shape, *[1] * (4 - f.ndim))  # MATLAB drops the trailing 1 of [3, 3, 64, 1]
    height, width = x.shape[:2]
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    y = np.broadcast_to(b.ravel(), (height, width, f.shape[3])).copy()
    for u in range(f.shape[0]):
        for v in range(f.shape[1]):
            y += padded[u : u + height, v : v + width] @ f[u, v]
    return y


def vdsr_official(model: dict[str, list[np.ndarray]], im_b: np.ndarray) -> np.ndarray:
    """VDSR's MatConvNet test of the official model on ``im_b`` [H, W]: convs with ReLUs between
    them, then the bicubic input added back."""
    feature = vl_nnconv_pad1(im_b[..., None], model["weight"][0], model["bias"][0])
    for weight, bias in zip(model["weight"][1:], model["bias"][1:], strict=True):
        feature = vl_nnconv_pad1(np.maximum(feature, 0), weight, bias)
    return feature[..., 0] + im_b


# -- the networks given the authors' weights compute the authors' forward ------------------------


@pytest.mark.parametrize("kernel_sizes", [(9, 5, 5), (9, 1, 5)])
def test_srcnn_with_matlab_weights_is_the_authors_forward(
    tmp_path: Path, kernel_sizes: tuple[int, int, int]
) -> None:
    path = tmp_path / "x3.mat"
    model = random_srcnn_mat(path, kernel_sizes)
    _, layout = convert_state_dict(read_state_dict(path)[0])
    assert layout.name == "srcnn_matlab"
    net = SRCNN(upscale=3, kernel_sizes=kernel_sizes).eval()
    load_pretrained(net, path)

    lr = torch.rand(1, 1, 11, 14, generator=torch.Generator().manual_seed(0))  # not square
    with torch.inference_mode():
        sr = net(lr)[0, 0].double().numpy()
    im_b = imresize(lr, scale=3)[0, 0].double().numpy()
    expected = srcnn_m(model, im_b)
    assert np.abs(expected).max() > 0.1  # the ReLUs do not zero everything out
    np.testing.assert_allclose(sr, expected, atol=1e-5, rtol=0)


def test_srcnn_matlab_weights_warn_about_zero_padding(tmp_path: Path, caplog) -> None:
    random_srcnn_mat(tmp_path / "x3.mat", (9, 5, 5))
    load_pretrained(SRCNN(upscale=3, padding_mode="zeros"), tmp_path / "x3.mat")
    assert "model.net.padding_mode=replicate" in caplog.text


@pytest.mark.parametrize("scale", [2, 3])
def test_vdsr_with_matconvnet_weights_is_the_authors_forward(tmp_path: Path, scale: int) -> None:
    path = tmp_path / "VDSR_Official.mat"
    model = random_vdsr_mat(path)
    assert convert_state_dict(read_state_dict(path)[0])[1].name == "vdsr_matconvnet"
    net = VDSR(upscale=scale).eval()
    load_pretrained(net, path)

    lr = torch.rand(1, 1, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        sr = net(lr)[0, 0].double().numpy()
    im_b = imresize(lr, scale=scale)[0, 0].double().numpy()
    expected = vdsr_official(model, im_b)
    assert np.abs(expected - im_b).max() > 0.01  # the residual branch contributes
    np.testing.assert_allclose(sr, expected, atol=1e-5, rtol=0)


def test_vdsr_matconvnet_weights_of_another_depth_are_named(tmp_path: Path) -> None:
    random_vdsr_mat(tmp_path / "VDSR_Official.mat")
    with pytest.raises(PretrainedError, match="vdsr_matconvnet") as error:
        load_pretrained(VDSR(num_layers=10), tmp_path / "VDSR_Official.mat")
    assert "unexpected (in the file, not in VDSR) (20)" in str(error.value)
    assert "body.20.weight" in str(error.value)


# -- the test input: the HR's Y channel, downscaled in floating point ---------------------------


def _eval_cfg(out: Path, shared_data: Path, overrides: list[str]):
    return compose_config(
        out, [f"data.root={shared_data / 'benchmarks'}", *overrides], config_name="eval"
    )


# The published bicubic Set5 rows (SRCNN, VDSR and later tables): PSNR dB, SSIM.
BICUBIC_SET5 = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_from_y_gives_the_published_bicubic_set5(
    shared_data: Path, tmp_path: Path, scale: int
) -> None:
    overrides = ["model=bicubic", f"scale={scale}", "eval.lr_from=y", "data.test_sets=[set5]"]
    results = evaluate(_eval_cfg(tmp_path, shared_data, overrides))
    set5 = results["datasets"]["Set5"]
    assert (round(set5["psnr"], 2), round(set5["ssim"], 4)) == BICUBIC_SET5[scale]
    assert set5["published"]["psnr"] == BICUBIC_SET5[scale][0]
    assert results["lr_from"] == "y" and results["protocol"] == "y-shave-scale"


def _matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB's conversion to uint8: round half away from zero, saturate."""
    return np.clip(np.floor(x + 0.5), 0, 255)


def test_srcnn_eval_is_the_authors_demo(shared_data: Path, tmp_path: Path) -> None:
    """``src/eval.py model=srcnn model.pretrained=x3.mat eval.lr_from=y`` scores butterfly as
    SRCNN_v1's ``demo_SR.m`` does: Y of ``rgb2ycbcr`` on uint8, ``imresize`` down and up,
    ``SRCNN.m``, ``uint8(im_h * 255)``, ``shave`` by the scale, ``compute_psnr``.

    ``SRCNN.m`` on the upscaled image is the srlab SRCNN with the same weights (shown equal
    above on a small image; the transcription is too slow for a whole one on a shared CPU).
    """
    weights = tmp_path / "x3.mat"
    random_srcnn_mat(weights, (9, 5, 5), seed=3, near_identity=True)
    overrides = [
        "model=srcnn",
        "scale=3",
        f"model.pretrained={weights}",
        "eval.lr_from=y",
        "data.test_sets=[{name: Set5, hr_dir: Set5/HR, files: [butterfly.png]}]",
    ]
    results = evaluate(_eval_cfg(tmp_path / "eval", shared_data, overrides))

    rgb = np.asarray(Image.open(shared_data / "benchmarks/Set5/HR/butterfly.png"), np.float64)
    y = _matlab_round(
        16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    )
    im_gnd = torch.from_numpy(y[: y.shape[0] // 3 * 3, : y.shape[1] // 3 * 3] / 255).float()
    im_l = imresize(im_gnd[None, None], scale=1 / 3)
    net = SRCNN(upscale=3).eval()
    load_pretrained(net, weights)
    with torch.inference_mode():
        im_h = _matlab_round(net(im_l)[0, 0].double().numpy() * 255)[3:-3, 3:-3]
    gnd = _matlab_round(im_gnd.double().numpy() * 255)[3:-3, 3:-3]
    psnr = 20 * math.log10(255 / math.sqrt(np.mean((im_h - gnd) ** 2)))
    assert 20 < psnr < 30  # near the bicubic upscale, so rounding and the border count
    assert results["datasets"]["Set5"]["images"]["butterfly"]["psnr"] == pytest.approx(
        psnr, abs=1e-3
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["eval.lr_from=yuv"], r"eval.lr_from='yuv': use one of \('rgb', 'y'\)"),
        (["eval.lr_from=y", "eval.channel=rgb"], "eval.channel='rgb' cannot be scored"),
        (["eval.lr_from=y", "data.lr=files"], "data.lr=files asks for them"),
    ],
)
def test_lr_from_conflicts_are_named(tmp_path: Path, overrides: list[str], message: str) -> None:
    cfg = compose_config(tmp_path, ["model=bicubic", *overrides], config_name="eval")
    with pytest.raises(ConfigError, match=message):
        evaluate(cfg)


# -- the authors' own weights, when given ---------------------------------------------------------

# (model, scale) -> the paper's PSNR on (Set5, Set14): SRCNN 9-5-5 trained on ImageNet (Dong et
# al., TPAMI 2016, the model of SRCNN_v1's "9-5-5(ImageNet)/x3.mat"); VDSR (Kim et al., CVPR
# 2016, Table 3), one model for every scale.
PAPER_PSNR = {
    ("srcnn", 3): (32.75, 29.30),
    ("vdsr", 2): (37.53, 33.03),
    ("vdsr", 3): (33.66, 29.77),
    ("vdsr", 4): (31.35, 28.01),
}
WEIGHTS_ENV = {"srcnn": "SRLAB_SRCNN_WEIGHTS", "vdsr": "SRLAB_VDSR_WEIGHTS"}


@pytest.mark.slow  # SRCNN/VDSR on the upscaled Set5 and Set14 images: minutes on a CPU
@pytest.mark.parametrize(("model", "scale"), sorted(PAPER_PSNR))
def test_authors_weights_reproduce_the_paper(
    shared_data: Path, tmp_path: Path, model: str, scale: int
) -> None:
    weights = os.environ.get(WEIGHTS_ENV[model])
    if not weights:
        pytest.skip(
            f"set {WEIGHTS_ENV[model]} to the authors' .mat weights (README: Reproducing the "
            "papers); no package registry reachable here ships them"
        )
    overrides = [
        f"model={model}",
        f"scale={scale}",
        f"model.pretrained={weights}",
        "eval.lr_from=y",
        "data.test_sets=[set5,set14]",
    ]
    results = evaluate(_eval_cfg(tmp_path, shared_data, overrides))
    for set_name, paper in zip(("Set5", "Set14"), PAPER_PSNR[(model, scale)], strict=True):
        assert results["datasets"][set_name]["psnr"] == pytest.approx(paper, abs=0.03), set_name

"""Weight files laid out as their authors' releases lay them out, with random values: for tests
of the loaders, and for the README commands that take such a file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.io
import torch


def conv(state: dict, name: str, cin: int, cout: int, k: int = 3) -> None:
    """Add ``name.weight`` [cout, cin, k, k] and ``name.bias`` [cout] of distinct random values."""
    state[f"{name}.weight"] = torch.randn(cout, cin, k, k)
    state[f"{name}.bias"] = torch.randn(cout)


# -- EDSR-PyTorch (sanghyun-son/EDSR-PyTorch) ------------------------------------------------


def edsr_pytorch_state(scale: int = 2, n_feats: int = 64, n_resblocks: int = 16) -> dict:
    """A state dict with the key names and shapes of EDSR-PyTorch's ``model/edsr.py``."""
    state: dict[str, torch.Tensor] = {}
    for shift in ("sub_mean", "add_mean"):  # MeanShift: a frozen 1x1 conv 3 -> 3
        conv(state, shift, 3, 3, k=1)
    conv(state, "head.0", 3, n_feats)
    for i in range(n_resblocks):  # ResBlock.body = [conv, ReLU, conv]
        conv(state, f"body.{i}.body.0", n_feats, n_feats)
        conv(state, f"body.{i}.body.2", n_feats, n_feats)
    conv(state, f"body.{n_resblocks}", n_feats, n_feats)
    # Upsampler: (conv to 4 * n_feats, PixelShuffle(2)) per x2 stage, convs at 0, 2, ...
    for stage in range(scale.bit_length() - 1):
        conv(state, f"tail.0.{2 * stage}", n_feats, 4 * n_feats)
    conv(state, "tail.1", n_feats, 3)
    return state


# -- SRCNN_v1 (MATLAB) and VDSR (MatConvNet) ------------------------------------------------------


def random_srcnn_mat(
    path: Path, kernel_sizes: tuple[int, int, int], seed: int = 0, near_identity: bool = False
) -> dict:
    """Random SRCNN weights in SRCNN_v1's .mat layout (64 and 32 filters), written to ``path``.

    ``near_identity``: small random weights plus a path of centre taps that passes the input
    through, so that the output is near the image, as trained weights' is.
    """
    rng = np.random.default_rng(seed)
    f1, f2, f3 = kernel_sizes
    model = {
        "weights_conv1": rng.normal(0, math.sqrt(2 / f1**2), (f1 * f1, 64)),
        "biases_conv1": rng.normal(0, 0.05, (64, 1)),
        "weights_conv2": rng.normal(0, math.sqrt(2 / (64 * f2**2)), (64, f2 * f2, 32)),
        "biases_conv2": rng.normal(0, 0.05, (32, 1)),
        "weights_conv3": rng.normal(0, math.sqrt(1 / (32 * f3**2)), (32, f3 * f3)),
        "biases_conv3": np.array([[0.3]]),
    }
    if near_identity:
        model = {key: value * 0.01 for key, value in model.items()}
        model["weights_conv1"][f1 * f1 // 2, 0] += 1  # the centre tap of each filter
        model["weights_conv2"][0, f2 * f2 // 2, 0] += 1
        model["weights_conv3"][0, f3 * f3 // 2] += 1
    scipy.io.savemat(path, model)
    return model


def random_vdsr_mat(path: Path, seed: int = 0, num_layers: int = 20, num_feat: int = 64) -> dict:
    """Random VDSR weights (by default the paper's 20 layers of 64 filters) as
    ``VDSR_Official.mat`` holds them: a struct ``model`` with cells ``weight{i}`` ([3, 3, in,
    out]; the last one [3, 3, 64], as MATLAB stores it) and ``bias{i}``."""
    rng = np.random.default_rng(seed)
    channels = [1] + [num_feat] * (num_layers - 1) + [1]
    weights = np.empty((1, num_layers), dtype=object)
    biases = np.empty((1, num_layers), dtype=object)
    for i in range(num_layers):
        c_in, c_out = channels[i], channels[i + 1]
        weight = rng.normal(0, math.sqrt(2 / (9 * c_in)), (3, 3, c_in, c_out))
        weights[0, i] = weight[..., 0] if c_out == 1 else weight
        biases[0, i] = rng.normal(0, 0.01, (c_out, 1))
    scipy.io.savemat(path, {"model": {"weight": weights, "bias": biases}})
    return {"weight": list(weights[0]), "bias": list(biases[0])}

"""The SRCNN authors' MATLAB release (``.mat`` of SRCNN_v1's test code) for srlab's SRCNN.

The ``.mat`` file is read into named arrays by :func:`srlab.weights.matlab.read_mat`; this
layout maps them onto srlab's parameters. The release code filters by correlation (MATLAB's
``imfilter``), as ``nn.Conv2d`` does, so no kernel is flipped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from srlab.weights.registry import KeyLayout, PretrainedError, StateDict, register_layout

_SRCNN_MATLAB_KEYS = frozenset(
    f"{kind}_conv{i}" for kind in ("weights", "biases") for i in (1, 2, 3)
)


def _matlab_filters(taps: torch.Tensor, where: str) -> torch.Tensor:
    """``[..., f*f]`` column-major filter taps -> ``[..., f, f]`` (rows, columns).

    MATLAB's ``reshape(v, f, f)`` puts ``v[k]`` at row ``k % f``, column ``k // f``: a C-order
    reshape, transposed.
    """
    size = int(round(taps.shape[-1] ** 0.5))
    if size * size != taps.shape[-1]:
        raise PretrainedError(
            f"SRCNN .mat: {where} has {taps.shape[-1]} taps per filter, not a square number"
        )
    return taps.reshape(*taps.shape[:-1], size, size).transpose(-1, -2)


def _convert_srcnn_matlab(state: Mapping[str, torch.Tensor]) -> StateDict:
    """The SRCNN authors' test-code weights (``model/9-5-5(ImageNet)/x3.mat`` of SRCNN_v1).

    ``SRCNN.m`` reads ``weights_conv1`` as ``[f1*f1, n1]`` (filter ``i`` is
    ``reshape(weights_conv1(:, i), f1, f1)``), ``weights_conv2`` as ``[n1, f2*f2, n2]`` (the
    filter from input ``j`` to output ``i`` is ``reshape(weights_conv2(j, :, i), f2, f2)``),
    ``weights_conv3`` as ``[n2, f3*f3]``, and ``biases_conv{1,2,3}`` as columns; every layer is
    ``imfilter(x, h, 'same', 'replicate')``, i.e. srlab's SRCNN with ``padding_mode:
    replicate``. Only the single-channel (Y) models exist in that release.
    """
    w1, w2, w3 = (state[f"weights_conv{i}"] for i in (1, 2, 3))
    if w1.dim() != 2 or w2.dim() != 3 or w3.dim() != 2:
        raise PretrainedError(
            "SRCNN .mat: expected weights_conv1 [f1*f1, n1], weights_conv2 [n1, f2*f2, n2] and "
            f"weights_conv3 [n2, f3*f3] (the Y-channel models of SRCNN_v1); found "
            f"{list(w1.shape)}, {list(w2.shape)}, {list(w3.shape)}"
        )
    out = {
        "conv1.weight": _matlab_filters(w1.T, "weights_conv1").unsqueeze(1),
        "conv2.weight": _matlab_filters(w2.permute(2, 0, 1), "weights_conv2"),
        "conv3.weight": _matlab_filters(w3, "weights_conv3").unsqueeze(0),
    }
    out.update({f"conv{i}.bias": state[f"biases_conv{i}"].reshape(-1) for i in (1, 2, 3)})
    # Anything else in the file surfaces as "unexpected" rather than being dropped silently.
    out.update({k: v for k, v in state.items() if k not in _SRCNN_MATLAB_KEYS})
    return out


def _check_srcnn_replicate(net: nn.Module) -> str | None:
    # The authors' weights were trained and tested with replicate-padded filtering; zero padding
    # changes every output pixel within 8 of the border and costs PSNR.
    modes = {m.padding_mode for m in net.modules() if isinstance(m, nn.Conv2d)}
    if modes != {"replicate"}:
        return (
            f"the SRCNN authors' weights filter with replicate padding (imfilter 'replicate') "
            f"but this network pads with {sorted(modes)}; set model.net.padding_mode=replicate"
        )
    return None


register_layout(
    KeyLayout(
        name="srcnn_matlab",
        description="the SRCNN authors' MATLAB test code (weights_conv1..3, biases_conv1..3 .mat)",
        detect=lambda keys: set(keys) >= _SRCNN_MATLAB_KEYS,
        convert=_convert_srcnn_matlab,
        check=_check_srcnn_replicate,
    )
)

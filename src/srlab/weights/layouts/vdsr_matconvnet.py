"""VDSR's MatConvNet release (``VDSR_Official.mat``) for srlab's VDSR.

The ``.mat`` file is read into named arrays by :func:`srlab.weights.matlab.read_mat`
(cells become ``model.weight.<i>``); this layout maps them onto srlab's parameters. MatConvNet's
``vl_nnconv`` filters by correlation, as ``nn.Conv2d`` does, so no kernel is flipped.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import torch

from srlab.weights.registry import KeyLayout, PretrainedError, StateDict, register_layout

_MATCONVNET_CELL = re.compile(r"(?P<prefix>(?:.+\.)?)(?P<kind>weight|bias)\.(?P<index>\d+)")


def _matconvnet_cells(keys: Collection[str]) -> dict[str, dict[int, str]]:
    """``{"weight": {i: key}, "bias": {i: key}}`` for the ``<prefix>weight.<i>`` cell entries."""
    cells: dict[str, dict[int, str]] = {"weight": {}, "bias": {}}
    for key in keys:
        if match := _MATCONVNET_CELL.fullmatch(key):
            cells[match["kind"]][int(match["index"])] = key
    return cells


def _is_vdsr_matconvnet(keys: Collection[str]) -> bool:
    cells = _matconvnet_cells(keys)
    return bool(cells["weight"]) and cells["weight"].keys() == cells["bias"].keys()


def _convert_vdsr_matconvnet(state: Mapping[str, torch.Tensor]) -> StateDict:
    """VDSR's MatConvNet weights (``VDSR_Official.mat``: cells ``model.weight{i}``,
    ``model.bias{i}``), layer ``i`` onto ``body.{2i}`` (the convs of srlab's VDSR body).

    MatConvNet filters are ``[kh, kw, in, out]`` (MATLAB drops the trailing 1 of the last
    layer's ``[3, 3, 64, 1]``); the test code runs ``vl_nnconv(x, w, b, 'Pad', 1)`` (zero
    padding) with ReLUs between layers and adds the bicubic input at the end, as srlab's VDSR.
    """
    cells = _matconvnet_cells(state.keys())
    out: StateDict = {}
    for position, index in enumerate(sorted(cells["weight"])):
        weight = state[cells["weight"][index]]
        if weight.dim() > 4:
            raise PretrainedError(
                f"VDSR .mat: {cells['weight'][index]} is {list(weight.shape)}, not a "
                "[kh, kw, in, out] MatConvNet filter bank"
            )
        weight = weight.reshape(*weight.shape, *[1] * (4 - weight.dim()))
        out[f"body.{2 * position}.weight"] = weight.permute(3, 2, 0, 1)
        out[f"body.{2 * position}.bias"] = state[cells["bias"][index]].reshape(-1)
    used = {*cells["weight"].values(), *cells["bias"].values()}
    out.update({k: v for k, v in state.items() if k not in used})
    return out


register_layout(
    KeyLayout(
        name="vdsr_matconvnet",
        description="VDSR's MatConvNet release (model.weight{i}, model.bias{i} cells in a .mat)",
        detect=_is_vdsr_matconvnet,
        convert=_convert_vdsr_matconvnet,
    )
)

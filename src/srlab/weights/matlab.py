"""MATLAB ``.mat`` files as named tensors: how the SRCNN and VDSR authors released weights.

:func:`read_mat` reads a file's numeric arrays with scipy's ``loadmat`` (data only: no code
in the file is run); the layouts ``srcnn_matlab`` and ``vdsr_matconvnet``
(:mod:`srlab.weights.layouts`) map those names onto srlab's parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from srlab.weights.registry import PretrainedError, StateDict

__all__ = ["read_mat"]


def _flatten_mat(name: str, value: object, out: StateDict) -> None:
    """Add the numeric arrays inside one MATLAB value to ``out``, named by their path."""
    from scipy.io.matlab import mat_struct

    if isinstance(value, mat_struct):
        for field in value._fieldnames:
            _flatten_mat(f"{name}.{field}", getattr(value, field), out)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        items = value.ravel(order="F")  # MATLAB's linear indexing is column-major
        if items.size == 1 and isinstance(items[0], mat_struct):
            _flatten_mat(name, items[0], out)  # a plain struct, not an array of them
        else:  # a cell array (or struct array): entry k becomes "<name>.<k>", 0-based
            for index, item in enumerate(items):
                _flatten_mat(f"{name}.{index}", item, out)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        out[name] = torch.from_numpy(np.array(value, dtype=np.float32))


def read_mat(path: str | Path) -> StateDict:
    """The numeric arrays of a MATLAB ``.mat`` file (v4-v7; data only, no code is run).

    Variables keep their names; struct fields and cell entries are joined with dots, cells
    indexed from 0 in MATLAB's column-major order (``model.weight{3}`` -> ``model.weight.2``).
    Shapes are MATLAB's, trailing singleton dimensions included only where MATLAB kept them.
    """
    from scipy.io import loadmat

    path = Path(path)
    try:
        # squeeze_me=False keeps [64, 1, 32] 3-D: the layouts read filter shapes from it.
        variables = loadmat(path, squeeze_me=False, struct_as_record=False)
    except NotImplementedError as exc:  # scipy's answer to an HDF5-based v7.3 file
        raise PretrainedError(
            f"cannot read {path}: it is a MATLAB v7.3 (HDF5) file, which scipy does not read; "
            "load it in MATLAB and save it again with save(<file>, <variables>, '-v7')"
        ) from exc
    except Exception as exc:
        raise PretrainedError(f"cannot read {path} as a MATLAB .mat file: {exc}") from exc
    out: StateDict = {}
    for name, value in variables.items():
        if not name.startswith("__"):  # __header__, __version__, __globals__
            _flatten_mat(name, value, out)
    if not out:
        raise PretrainedError(f"{path} holds no numeric MATLAB arrays")
    return out

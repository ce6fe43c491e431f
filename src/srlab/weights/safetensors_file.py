"""``.safetensors`` weight files: tensors and string metadata, never pickle.

The community's releases increasingly ship as ``.safetensors`` (a JSON header and raw tensor
bytes: reading one cannot run code). srlab reads them anywhere it reads weights, and
``src/export.py format=safetensors`` writes a network's weights with its model config and
scale in the metadata, so that the file alone rebuilds the network
(:func:`srlab.app.network.stored_model`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from srlab.files import atomic_write
from srlab.weights.registry import PretrainedError, StateDict

__all__ = ["MODEL_KEY", "read_safetensors", "stored_model_metadata", "write_safetensors"]

#: Metadata key of the JSON ``{"model": <resolved model config>, "scale": s}``.
MODEL_KEY = "srlab"


def read_safetensors(path: str | Path) -> StateDict:
    """The tensors of a ``.safetensors`` file, on the CPU.

    Raises:
        PretrainedError: the file is not a valid safetensors file (cut short, not one).
    """
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PretrainedError(
            f"{path} is not a readable .safetensors file ({exc}): was it cut short? "
            "Download or export it again"
        ) from None


def stored_model_metadata(path: str | Path) -> dict[str, Any] | None:
    """``{"model": ..., "scale": ...}`` that srlab wrote into the file's metadata, or None."""
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise PretrainedError(f"{path} is not a readable .safetensors file ({exc})") from None
    text = metadata.get(MODEL_KEY)
    return json.loads(text) if text else None


def write_safetensors(
    path: str | Path, state: dict[str, torch.Tensor], described: dict[str, Any] | None = None
) -> Path:
    """Write ``state`` to ``path`` atomically, with ``described`` (the model config and scale)
    as JSON metadata. Tensors that share memory are written as copies (safetensors refuses
    shared storage)."""
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()}
    metadata = {MODEL_KEY: json.dumps(described)} if described is not None else None
    with atomic_write(path, fsync=True) as partial:
        save_file(tensors, str(partial), metadata=metadata)
    return Path(path)

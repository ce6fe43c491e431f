"""Reading checkpoint and weights files safely, and finding the network's state dict inside.

:func:`read_checkpoint` is srlab's one way to open a file written by ``torch.save``: always
``torch.load(..., weights_only=True)``, so a file can never run code, only hand back tensors
and plain containers; every reader of user files goes through it (pretrained weights, the
W&B run id of a resumed checkpoint, ``ckpt_path=last``). A file that does not load that way
is a :class:`CheckpointError`, one line naming the file.

:func:`read_state_dict` then unwraps what the common code bases save around a state dict
(Lightning ``.ckpt``, BasicSR releases, EMA copies, ``module.`` prefixes), and reads the
MATLAB ``.mat`` releases with :func:`srlab.weights.matlab.read_mat`, and ``.safetensors``
files (which hold tensors only) with :mod:`srlab.weights.safetensors_file`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from srlab.weights.matlab import read_mat
from srlab.weights.registry import PretrainedError, StateDict
from srlab.weights.safetensors_file import read_safetensors

__all__ = ["CheckpointError", "read_checkpoint", "read_state_dict", "trained_scale"]

# Where checkpoints keep the network's state dict, most preferred first: EMA weights (BasicSR's
# ``params_ema``, timm-style ``state_dict_ema``, ...) beat the live ones, since they are what
# their authors evaluate and release.
_EMA_KEYS = ("params_ema", "ema_state_dict", "state_dict_ema", "model_ema", "ema")
_PLAIN_KEYS = ("params", "state_dict", "model", "net", "generator")
_LIGHTNING_MARKERS = ("pytorch-lightning_version", "global_step", "loops")


class CheckpointError(PretrainedError):
    """A file cannot be read with ``torch.load(weights_only=True)``: not a checkpoint, cut
    short, or holding pickled objects besides tensors (which could run code when loaded)."""


def _reason(exc: BaseException) -> str:
    """The useful sentence of a ``torch.load`` error, on one line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch bolds part of its message
    # weights_only refusals bury the cause ("Unsupported global: GLOBAL io.open was not an
    # allowed global by default") under two paragraphs of advice.
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
        return text.strip().split(". ", 1)[0].splitlines()[0].rstrip(".")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Any:
    """The object ``torch.save`` wrote to ``path``, read with ``torch.load(weights_only=True)``.

    Args:
        path: The file.
        mmap: Map the file instead of reading it, so that taking a few small entries (the
            step, the W&B run id) out of a large checkpoint reads only those; applies to
            zip-format files (every ``torch.save`` since PyTorch 1.6), others are read whole.

    Returns:
        The loaded object, on the CPU.

    Raises:
        CheckpointError: The file is missing, or does not load with ``weights_only=True``;
            the message (one line) names the file, the reason, and how to re-save a file
            that is trusted but holds other objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        use_mmap = mmap and zipfile.is_zipfile(path)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except Exception as exc:  # UnpicklingError, zip errors, EOF: all mean "not loadable"
        raise CheckpointError(
            f"cannot read {path} with torch.load(weights_only=True): {_reason(exc)}. srlab "
            "loads nothing else, so that no file can run code; if you trust this file, load it "
            "once yourself with torch.load's weights_only check turned off and save only its "
            "tensors (torch.save(checkpoint['state_dict'], 'clean.pth'))"
        ) from exc


def _is_state_dict(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _unwrap(obj: object, where: str) -> tuple[Mapping[str, torch.Tensor], list[str]]:
    """Descend through wrapper dicts to the state dict; return it and the keys taken."""
    trail: list[str] = []
    while not _is_state_dict(obj):
        if not isinstance(obj, Mapping):
            raise PretrainedError(
                f"{where}: expected a dict of tensors, found {type(obj).__name__}"
            )
        key = next((k for k in (*_EMA_KEYS, *_PLAIN_KEYS) if isinstance(obj.get(k), Mapping)), None)
        if key is None:
            shown = ", ".join(map(str, list(obj)[:12]))
            raise PretrainedError(
                f"{where}: no state dict found; top-level keys: {shown} (expected a dict of "
                f"tensors or one under {', '.join(_EMA_KEYS + _PLAIN_KEYS)})"
            )
        trail.append(key)
        obj = obj[key]
    return obj, trail


def _strip_wrappers(state: Mapping[str, torch.Tensor]) -> StateDict:
    # torch.compile inserts "_orig_mod." and DataParallel/DDP "module." into every name; neither
    # is part of the network, so weights saved from either load into a plain one.
    out = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
    if all(k.startswith("module.") for k in out):
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def submodule(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def read_state_dict(path: str | Path) -> tuple[StateDict, str]:
    """Read the network's state dict from a checkpoint file, with ``weights_only=True``.

    Understands: a plain state dict (``.pth``); BasicSR releases (``params_ema`` preferred to
    ``params``); dicts with ``state_dict`` / ``model`` / ``net``; EMA copies under
    ``ema_state_dict`` / ``state_dict_ema`` (preferred); and Lightning ``.ckpt`` files, whose
    ``state_dict`` holds the whole task, from which the network (``net.*``) is taken. A
    ``.mat`` file (the SRCNN and VDSR authors' MATLAB releases) is read with scipy's
    ``loadmat`` into its named arrays (:func:`srlab.weights.matlab.read_mat`), which a layout
    then maps. A ``.safetensors`` file is its tensors.

    A Lightning checkpoint written with ``WeightAveraging``/``EMAWeightAveraging`` (lightning
    2.6, ``on_save_checkpoint``) already stores the *averaged* weights in ``state_dict`` and
    moves the live ones to ``current_model_state`` (with ``averaging_state`` holding
    ``n_averaged``); the callback's own entry under ``callbacks`` only has
    ``latest_update_step``. So ``state_dict`` is the EMA and is what gets loaded.

    Args:
        path: The checkpoint file.

    Returns:
        The state dict (wrapper prefixes ``net.``, ``module.``, ``_orig_mod.`` removed) and a
        short description of where in the file it was found.

    Raises:
        CheckpointError: If the file cannot be read with ``weights_only=True``.
        PretrainedError: If it holds no state dict.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return read_mat(path), "MATLAB variables"
    if path.suffix.lower() == ".safetensors":
        return _strip_wrappers(read_safetensors(path)), "safetensors"
    obj = read_checkpoint(path)
    state, trail = _unwrap(obj, str(path))
    where = "/".join(trail) or "top level"
    is_lightning = isinstance(obj, Mapping) and any(m in obj for m in _LIGHTNING_MARKERS)
    state = _strip_wrappers(state)
    if is_lightning:
        if trail == ["state_dict"] and "current_model_state" in obj:
            where += " (averaged by Lightning's WeightAveraging/EMA)"
        if any(k.startswith("net.") for k in state):
            # A task's state dict: take the network, not the loss, discriminator or others.
            state = submodule(state, "net.")
            where += ", net.*"
    return state, where


def trained_scale(path: str | Path) -> int | None:
    """The scale an srlab (Lightning) checkpoint was trained at; None for other files.

    >>> trained_scale("weights.pth") is None
    True
    """
    path = Path(path)
    if path.suffix.lower() != ".ckpt" or not path.is_file():
        return None
    try:  # mmap: only the small hyperparameter entries are read, not the tensors
        obj = read_checkpoint(path, mmap=True)
    except CheckpointError:  # read_state_dict, which reads the file next, says why
        return None
    hyper = obj.get("datamodule_hyper_parameters") if isinstance(obj, Mapping) else None
    scale = hyper.get("scale") if isinstance(hyper, Mapping) else None
    return int(scale) if isinstance(scale, int) else None

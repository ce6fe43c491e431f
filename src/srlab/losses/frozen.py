"""Frozen networks inside a loss (VGG, LPIPS, DISTS) stay out of the loss's checkpoints.

Their weights come from their own sources (torchvision's releases, calibration files), so
storing them in every training checkpoint would only grow the files, and loading an older
checkpoint that lacks them must still work with strict loading.
"""

from __future__ import annotations

import functools
from typing import Any

from torch import nn

__all__ = ["exclude_from_checkpoints"]


def exclude_from_checkpoints(module: nn.Module, name: str) -> None:
    """Leave ``module.<name>`` out of ``module``'s state dicts; a state dict without it loads
    (strictly) and keeps the weights ``module.<name>`` was built with."""
    module.register_state_dict_post_hook(functools.partial(_drop, name=name))
    module.register_load_state_dict_pre_hook(functools.partial(_keep_when_absent, name=name))


def _drop(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any, *, name: str
) -> None:
    for key in [k for k in state_dict if k.startswith(f"{prefix}{name}.")]:
        del state_dict[key]


def _keep_when_absent(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
    *,
    name: str,
) -> None:
    own = f"{prefix}{name}."
    if any(k.startswith(own) for k in state_dict):
        return
    for key, tensor in getattr(module, name).state_dict().items():
        state_dict[own + key] = tensor

"""Config validation before anything is built: unknown keys are named, with the valid ones.

Every config node with a ``_target_`` is checked against the signature of what it builds, so
a typo (``model.optimizer.learning_rate``, ``data.batchsize``) fails in the first second
instead of deep inside Hydra or, worse, being ignored.
"""

from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_method, get_object
from omegaconf import DictConfig, ListConfig

from srlab.errors import ConfigError

_HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}


def check_targets(node: Any, where: str) -> None:
    """Raise :class:`ConfigError` for keys that the ``_target_`` of ``node`` (or of any node
    below it) does not accept; nodes whose target takes ``**kwargs`` accept anything."""
    if isinstance(node, ListConfig):
        for index, item in enumerate(node):
            check_targets(item, f"{where}[{index}]")
        return
    if not isinstance(node, DictConfig):
        return
    target = node.get("_target_")
    if target is not None:
        _check_keys(node, where, target)
    for key in node:
        if key not in _HYDRA_KEYS:
            check_targets(node._get_node(key), f"{where}.{key}")


def _check_keys(node: DictConfig, where: str, target: str) -> None:
    try:
        built = get_object(target) if "." in target else get_method(target)
    except Exception as error:  # noqa: BLE001 - any import failure is a config error here
        raise ConfigError(f"{where}._target_={target!r} cannot be imported: {error}") from error
    valid = accepted_keys(built)
    if valid is None:
        return
    unknown = sorted(str(key) for key in node if key not in _HYDRA_KEYS and key not in valid)
    if unknown:
        raise ConfigError(
            f"{', '.join(f'{where}.{key}' for key in unknown)}: not an argument of {target}. "
            f"Valid keys of {where}: {', '.join(sorted(valid))}"
        )


def accepted_keys(built: Any) -> set[str] | None:
    """The keyword arguments ``built`` accepts, or None when it takes any (``**kwargs`` that
    go nowhere we can see).

    For a class whose ``__init__`` forwards ``**kwargs`` to its base class (the SR tasks),
    the base class's arguments are followed up the MRO.
    """
    inits = (
        [k.__dict__["__init__"] for k in built.__mro__ if "__init__" in k.__dict__]
        if inspect.isclass(built)
        else [built]
    )
    names: set[str] = set()
    for init in inits:
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None  # builtins without a signature: let instantiation judge
        names |= {
            p.name
            for p in parameters
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        }
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return names - {"self"}
    return None

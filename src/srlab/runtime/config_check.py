"""Config validation before anything is built: unknown keys and impossible values.

Two checks, both before any dataset, network or trainer exists:

* :func:`check_values`: the scalar values that srlab's code relies on (``scale``,
  ``data.batch_size``, ``data.patch_size`` ...) have the right type and range, so that
  ``data.batch_size=abc`` or ``scale=0`` is one line naming the key instead of a
  ``ZeroDivisionError`` at step 0. It needs only omegaconf and the standard library (no torch,
  nothing is imported from the config), so an entry point can run it before its heavy imports.
* :func:`check_targets`: every config node with a ``_target_`` is checked against the
  signature of what it builds, so a typo (``model.optimizer.learning_rate``,
  ``data.batchsize``) fails before anything is built instead of deep inside Hydra or, worse,
  being ignored. It imports each target (and so torch).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

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
    from hydra.utils import get_method, get_object  # imports the target: torch and the rest

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
    the base class's arguments are followed up the MRO. An alternative constructor (a
    classmethod such as ``SRDataModule.from_folder``) whose ``**kwargs`` go to its class
    accepts its own arguments and those of the class.
    """
    owner = getattr(built, "__self__", None)
    if inspect.ismethod(built) and inspect.isclass(owner):
        own = _signature_keys(built)
        if own is None:
            return None
        names, takes_kwargs = own
        if not takes_kwargs:
            return names
        forwarded = accepted_keys(owner)
        return None if forwarded is None else names | forwarded
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


def _signature_keys(function: Callable[..., Any]) -> tuple[set[str], bool] | None:
    """The named parameters of ``function`` (without ``cls``/``self``) and whether it takes
    ``**kwargs``; None when it has no inspectable signature."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {
        p.name
        for p in parameters
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return names - {"self", "cls"}, takes_kwargs


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one config key must hold.

    Args:
        kind: ``int`` or ``float`` (an int is a valid float; a bool is neither).
        minimum: the smallest valid value (inclusive), or None.
        nullable: null is valid (the key is optional).
        words: strings that are valid too (``auto``).
        hint: how to fix a bad value, appended to the message.
    """

    kind: str
    minimum: float | None = None
    nullable: bool = False
    words: tuple[str, ...] = ()
    hint: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is invalid, or None when it is valid."""
        if value is None:
            return None if self.nullable else "must be set"
        if isinstance(value, str) and value in self.words:
            return None
        number = _number(value, self.kind)
        if number is None:
            options = " or ".join([f"an {self.kind}" if self.kind == "int" else "a number",
                                   *self.words, *(["null"] if self.nullable else [])])  # fmt: skip
            return f"must be {options}"
        if not math.isfinite(number):
            return "must be finite"
        if self.minimum is not None and number < self.minimum:
            return f"must be at least {self.minimum:g}"
        return None


def _number(value: Any, kind: str) -> float | None:
    if isinstance(value, bool):
        return None
    if kind == "int":
        return float(value) if isinstance(value, int) else None
    return float(value) if isinstance(value, int | float) else None


_PATCH_HINT = "the HR training patch side in pixels, a multiple of scale"
#: The scalar keys srlab's code divides by, counts with or loops over, and what each must hold.
#: A key that a config does not have is skipped (``infer`` has no ``data``).
VALUE_RULES: dict[str, Rule] = {
    # null: eval and infer take the checkpoint's.
    "scale": Rule("int", 1, nullable=True, hint="the SR factor, e.g. 2, 3 or 4"),
    "seed": Rule("int", 0),
    "data.batch_size": Rule("int", 1, hint="patches per training step, e.g. 16"),
    "data.patch_size": Rule("int", 1, hint=_PATCH_HINT),
    "data.repeat": Rule("int", 1, hint="visits of each training image per epoch"),
    "data.num_workers": Rule("int", 0, words=("auto",)),
    "data.prefetch_factor": Rule("int", 1),
    "data.eval_crop": Rule("int", 1, nullable=True),
    "trainer.max_steps": Rule("int", -1, hint="-1 trains until trainer.max_epochs"),
    "trainer.devices": Rule("int", 1, words=("auto",)),
    "trainer.num_nodes": Rule("int", 1),
    "trainer.log_every_n_steps": Rule("int", 1),
    "trainer.val_check_interval": Rule("float", 0, nullable=True),
    "trainer.gradient_clip_val": Rule("float", 0, nullable=True),
    "model.optimizer.lr": Rule("float", 0, hint="the learning rate, e.g. 1e-4"),
    "model.max_nonfinite_steps": Rule("int", 1),
    "inference.tile": Rule(
        "int", 0, nullable=True, words=("auto",), hint="LR pixels; 0 or null: whole images"
    ),
    "inference.memory_budget_gb": Rule("float", 0, nullable=True, hint="GiB, e.g. 4"),
    "inference.tile_overlap": Rule("int", 0),
    "inference.batch": Rule("int", 1),
}


def check_values(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` for every scalar of :data:`VALUE_RULES` that ``cfg``
    holds with a wrong type or range, and for a training patch smaller than the scale.

    Values are read resolved; one whose interpolation does not resolve yet (a resolver that
    only a running job has) is left to the code that reads it.
    """
    problems = []
    for key, rule in VALUE_RULES.items():
        found, value = _value(cfg, key)
        if not found:
            continue
        problem = rule.problem(value)
        if problem is not None:
            hint = f" ({rule.hint})" if rule.hint else ""
            problems.append(f"{key}={value!r} {problem}{hint}")
    if not problems:
        _check_patch(cfg)
        return
    raise ConfigError("; ".join(problems) + ": fix these values on the command line or in conf/")


def _check_patch(cfg: DictConfig) -> None:
    _, scale = _value(cfg, "scale")
    found, patch = _value(cfg, "data.patch_size")
    if found and isinstance(scale, int) and patch is not None and patch < scale:
        raise ConfigError(
            f"data.patch_size={patch} is smaller than scale={scale}: the LR patch would be "
            f"empty; use a multiple of the scale, e.g. data.patch_size={48 * scale}"
        )


def _value(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """Whether ``cfg`` has ``key`` (a config node or a scalar), and its resolved value."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        try:
            node = node[part]
        except Exception:  # noqa: BLE001 - an interpolation that cannot resolve yet: not ours
            return False, None
    if OmegaConf.is_config(node):
        return False, None  # a node where a scalar is expected: instantiation reports it
    return True, node

"""The weights layer's error, and the registry of key layouts: whose parameter names a state
dict uses, and how to rename them to srlab's.

Each foreign layout lives in its own module of :mod:`srlab.weights.layouts` and registers
itself there with :func:`register_layout`; a new network that wants to read another code
base's weights adds one module (usually a :func:`rename_by_rules` list), and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from srlab.errors import SRLabError

__all__ = [
    "KeyLayout",
    "PretrainedError",
    "StateDict",
    "convert_state_dict",
    "detect_layout",
    "register_layout",
    "registered_layouts",
    "rename_by_rules",
]

StateDict = dict[str, torch.Tensor]


class PretrainedError(SRLabError):
    """Pretrained weights cannot be read or matched to the network."""


@dataclass(frozen=True)
class KeyLayout:
    """How one code base names a network's parameters, and how to rename them to srlab's.

    Attributes:
        name: Short identifier, shown in messages and accepted by ``load_pretrained(layout=...)``.
        description: Where the layout comes from (repository, network), for messages.
        detect: Whether a set of state-dict keys is in this layout; it should test keys that
            only this layout has, so detection is unambiguous.
        convert: Maps a state dict in this layout to one with srlab's names. Keys it drops are
            simply absent from the result (e.g. a stored mean that srlab keeps as a constant).
        check: Optional; given the target network, returns a warning when the weights need a
            setting the network does not have (e.g. the input range), else ``None``.
    """

    name: str
    description: str
    detect: Callable[[Collection[str]], bool]
    convert: Callable[[Mapping[str, torch.Tensor]], StateDict]
    check: Callable[[nn.Module], str | None] | None = None


# Insertion order is detection order; the identity layout is the fallback, not in here.
_LAYOUTS: dict[str, KeyLayout] = {}

_IDENTITY = KeyLayout(
    name="srlab",
    description="srlab's own names, the same as BasicSR's; no renaming",
    detect=lambda keys: True,
    convert=lambda state: dict(state),
)


def register_layout(layout: KeyLayout, *, replace: bool = False) -> KeyLayout:
    """Add a foreign layout to the registry that :func:`detect_layout` searches.

    Args:
        layout: The layout to add.
        replace: Allow replacing a layout of the same name (otherwise that is an error, so two
            modules cannot silently shadow each other).

    Returns:
        ``layout``, so a module can keep a reference to what it registered.

    Raises:
        ValueError: If the name is taken (and ``replace`` is false) or is ``"srlab"``.
    """
    if layout.name == _IDENTITY.name or (layout.name in _LAYOUTS and not replace):
        raise ValueError(f"a key layout named {layout.name!r} is already registered")
    _LAYOUTS[layout.name] = layout
    return layout


def registered_layouts() -> tuple[str, ...]:
    """Names of the known layouts: the registered foreign ones, then ``"srlab"`` (identity)."""
    return (*_LAYOUTS, _IDENTITY.name)


def _layout_by_name(name: str) -> KeyLayout:
    if name == _IDENTITY.name:
        return _IDENTITY
    if name not in _LAYOUTS:
        raise PretrainedError(
            f"unknown key layout {name!r}; known layouts: {', '.join(registered_layouts())}"
        )
    return _LAYOUTS[name]


def detect_layout(keys: Collection[str]) -> KeyLayout:
    """The layout of a state dict, from its keys: the foreign layout that claims them, else srlab's.

    Raises:
        PretrainedError: If more than one registered layout claims the keys.
    """
    matches = [layout for layout in _LAYOUTS.values() if layout.detect(keys)]
    if len(matches) > 1:
        names = ", ".join(layout.name for layout in matches)
        raise PretrainedError(
            f"the state dict matches several key layouts ({names}); pass layout=<name> to choose"
        )
    return matches[0] if matches else _IDENTITY


def convert_state_dict(
    state: Mapping[str, torch.Tensor], layout: str | None = None
) -> tuple[StateDict, KeyLayout]:
    """Rename a state dict to srlab's names.

    Args:
        state: A flat state dict (name -> tensor).
        layout: A registered layout name to use; ``None`` detects it from the keys.

    Returns:
        The renamed state dict and the layout used.
    """
    chosen = _layout_by_name(layout) if layout is not None else detect_layout(state.keys())
    return chosen.convert(state), chosen


def rename_by_rules(
    rules: Sequence[tuple[str, str | None]],
) -> Callable[[Mapping[str, torch.Tensor]], StateDict]:
    """Build a ``convert`` function from regex rules, for :class:`KeyLayout`.

    Each key is matched (``re.fullmatch``) against the rules in order; the first rule that
    matches renames it with ``re.sub``-style backreferences (``r"body.\\1.conv1.\\2"``), or drops
    it when its replacement is ``None``. Keys no rule matches are kept as they are, so they
    surface as "unexpected" if the network does not have them.

    Args:
        rules: ``(pattern, replacement)`` pairs.

    Returns:
        A function mapping a state dict to the renamed one.

    Example:
        >>> convert = rename_by_rules(
        ...     [(r"trunk_conv\\.(.+)", r"conv_body.\\1"), (r"junk\\..*", None)]
        ... )
        >>> sorted(convert({"trunk_conv.bias": torch.zeros(1), "junk.x": torch.zeros(1)}))
        ['conv_body.bias']
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]

    def convert(state: Mapping[str, torch.Tensor]) -> StateDict:
        out: StateDict = {}
        for key, value in state.items():
            for pattern, replacement in compiled:
                match = pattern.fullmatch(key)
                if match:
                    if replacement is not None:
                        out[match.expand(replacement)] = value
                    break
            else:
                out[key] = value
        return out

    return convert

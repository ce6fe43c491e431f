"""The community's architectures (spandrel's code) as srlab networks, and their detection.

spandrel (PyPI ``spandrel``, the loader of chaiNNer, ComfyUI and traiNNer-redux) implements
today's SR architectures from their official code, with the official parameter names, and
recognizes an architecture and its hyperparameters from a bare state dict. srlab uses both:

* each architecture is a subclass of spandrel's module in its own file (``swinir.py``,
  ``hat.py``, ...), taking spandrel's (= the official code's) arguments and adding srlab's
  contract through :class:`CommunityNetwork`: ``upscale`` and ``num_in_ch``, LR in ``[0, 1]``
  in and SR out, the input never modified (tested), and the mixed precisions it is safe in;
* :func:`detect_network` turns a state dict of any of them into the srlab network config that
  rebuilds it (``src/eval.py ckpt_path=<.pth|.safetensors>`` with no ``model=``, and
  ``model.net=auto model.pretrained=<file>`` in training).

spandrel is the optional ``archs`` extra (it needs torchvision): importing an architecture
file without it raises :class:`MissingDependencyError` saying what to install.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from srlab.errors import ConfigError, SRLabError

__all__ = [
    "ARCHITECTURES",
    "CommunityNetwork",
    "MissingDependencyError",
    "Precision",
    "UnknownArchitectureError",
    "check_precision",
    "detect_network",
    "spandrel_class",
]

INSTALL_HINT = "pip install -e '.[archs]' (spandrel; it needs torchvision, see the README)"

#: spandrel's architecture id -> the srlab class that builds it (import paths: nothing is
#: imported before a network is asked for).
ARCHITECTURES: dict[str, str] = {
    "RCAN": "srlab.models.rcan.RCAN",
    "SwinIR": "srlab.models.swinir.SwinIR",
    "Swin2SR": "srlab.models.swin2sr.Swin2SR",
    "HAT": "srlab.models.hat.HAT",
    "DAT": "srlab.models.dat.DAT",
    "SPAN": "srlab.models.span.SPAN",
    "OmniSR": "srlab.models.omnisr.OmniSR",
    "Compact": "srlab.models.compact.SRVGGNetCompact",
}


class MissingDependencyError(SRLabError):
    """An architecture needs a package that is not installed (spandrel)."""


class UnknownArchitectureError(SRLabError):
    """A weight file's architecture is not one srlab can build."""


@dataclass(frozen=True)
class Precision:
    """Whether an architecture gives fp32's result under fp16 and bf16 autocast.

    Attributes:
        fp16: safe under ``16-mixed`` (training) and ``precision=16`` (inference).
        bf16: safe under ``bf16-mixed`` and ``precision=bf16``.
        why: what the flags rest on: the measurement (``tests/test_architectures.py``
            compares each architecture's output under autocast with fp32's) and, for trained
            weights, what the architecture's users report.
    """

    fp16: bool
    bf16: bool
    why: str

    def safe(self, precision: str) -> bool:
        """Whether ``precision`` (Lightning's ``16-mixed``/``bf16-mixed``/``32-true``..., or
        inference's ``16``/``bf16``/``32``) is safe for the architecture."""
        text = str(precision)
        if text.startswith("bf16"):
            return self.bf16
        if text.startswith("16") or text in ("fp16", "half"):
            return self.fp16
        return True


def spandrel_class(architecture: str, name: str) -> type[nn.Module]:
    """spandrel's module class ``name`` of ``spandrel.architectures.<architecture>``.

    Raises:
        MissingDependencyError: spandrel is not installed, or does not import.
    """
    try:
        module = importlib.import_module(f"spandrel.architectures.{architecture}")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the {architecture} architecture comes from spandrel, which does not import "
            f"({exc}): {INSTALL_HINT}"
        ) from exc
    return getattr(module, name)


class CommunityNetwork:
    """srlab's contract on top of a spandrel module (mixed in before it).

    The constructor is spandrel's: keyword-only, with the official code's argument names, and
    it records its arguments in ``self.hyperparameters``. A subclass sets :attr:`precision`
    and adds ``upscale`` / ``num_in_ch`` where the official module names them otherwise.
    """

    precision: ClassVar[Precision]
    hyperparameters: dict[str, Any]

    @classmethod
    def config_from_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        """The Hydra ``net`` config of this class with ``hyperparameters`` (spandrel's).

        Arguments whose value is not a plain value (a layer class such as ``nn.LayerNorm``)
        are left to the class default; one that differs from it cannot be written as config.

        Raises:
            UnknownArchitectureError: a non-plain argument differs from the default.
        """
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        config: dict[str, Any] = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
        for name, value in hyperparameters.items():
            if isinstance(value, (bool, int, float, str, type(None))):
                config[name] = value
            elif isinstance(value, (list, tuple)) and all(
                isinstance(item, (bool, int, float, str)) for item in value
            ):
                config[name] = list(value)
            elif value is not defaults.get(name):
                raise UnknownArchitectureError(
                    f"{cls.__name__}: argument {name}={value!r} is not the default "
                    f"({defaults.get(name)!r}) and cannot be written as config"
                )
        return config


def _class_of(path: str) -> type[nn.Module]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass
class DetectedNetwork:
    """A state dict's architecture, as spandrel recognized it.

    Attributes:
        architecture: spandrel's id of the architecture (``SwinIR``, ``HAT``, ...).
        config: the srlab ``net`` config that rebuilds it (``_target_`` and arguments).
        scale: the SR scale.
        state_dict: the weights, in the names of the srlab (= official) network.
    """

    architecture: str
    config: dict[str, Any]
    scale: int
    state_dict: dict[str, torch.Tensor]

    def build(self) -> nn.Module:
        """The srlab network with these weights loaded (strictly), in eval mode."""
        net = _class_of(self.config["_target_"])(
            **{k: v for k, v in self.config.items() if k != "_target_"}
        )
        net.load_state_dict(self.state_dict, strict=True)
        return net.eval()


def supported() -> str:
    """The architectures srlab builds from a bare state dict, for messages."""
    return ", ".join(ARCHITECTURES)


def detect_network(state_dict: Mapping[str, torch.Tensor], source: str) -> DetectedNetwork:
    """Recognize the architecture and hyperparameters of ``state_dict`` (read from ``source``).

    Raises:
        MissingDependencyError: spandrel is not installed.
        UnknownArchitectureError: spandrel does not recognize the weights, or srlab does not
            build their architecture; the message lists those it does.
    """
    try:
        import spandrel
    except ImportError as exc:
        raise MissingDependencyError(
            f"{source} is not an srlab checkpoint; recognizing other weight files needs "
            f"spandrel ({exc}): {INSTALL_HINT}"
        ) from exc
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))
    except spandrel.UnsupportedModelError:
        raise UnknownArchitectureError(
            f"{source}: the architecture of these weights is not recognized; srlab builds "
            f"{supported()} from a bare state dict, and its own networks from srlab "
            "checkpoints or with model=<name> (conf/model/) and ckpt_path="
        ) from None
    architecture = descriptor.architecture.id
    if architecture not in ARCHITECTURES:
        raise UnknownArchitectureError(
            f"{source} holds a {architecture} network ({descriptor.purpose}), which srlab does "
            f"not build; it builds {supported()} from a bare state dict"
        )
    cls = _class_of(ARCHITECTURES[architecture])
    config = cls.config_from_hyperparameters(descriptor.model.hyperparameters)
    return DetectedNetwork(
        architecture=architecture,
        config=config,
        scale=int(descriptor.scale),
        state_dict=descriptor.model.state_dict(),
    )


def check_precision(net: nn.Module, precision: Any, key: str, safe_choices: str) -> None:
    """Refuse a mixed precision that ``net``'s architecture is not safe in.

    Args:
        net: the network (networks without a :class:`Precision` pass).
        precision: the configured value (``16-mixed``, ``bf16``, ``32``, ...).
        key: the config key it comes from, for the message.
        safe_choices: what to use instead, for the message.

    Raises:
        ConfigError: the architecture is marked unsafe in that precision.
    """
    flags = getattr(net, "precision", None)
    if not isinstance(flags, Precision) or precision is None or flags.safe(precision):
        return
    kind = "bf16" if str(precision).startswith("bf16") else "fp16"
    raise ConfigError(
        f"{key}={precision}: {type(net).__name__} is not safe in {kind} ({flags.why}); use "
        f"{safe_choices}"
    )

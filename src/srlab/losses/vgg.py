"""VGG19 convolutional features with torchvision's parameter names, for perceptual losses.

Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
(ICLR 2015), https://arxiv.org/abs/1409.1556, configuration E (19 layers).

srlab defines the network itself (torchvision is not a dependency) with exactly the layout of
``torchvision.models.vgg19().features``: an ``nn.Sequential`` whose convolutions sit at the
official indices, so the ImageNet weights that torchvision publishes
(:data:`TORCHVISION_VGG19_URL`, keys ``features.{i}.weight`` / ``features.{i}.bias``) load into
it unchanged. Layers are addressed by the names BasicSR uses (``conv5_4``, ``relu2_2``,
``pool3``; see :data:`VGG19_LAYER_NAMES`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from srlab.weights.torchvision_features import load_torchvision_features, vgg_features

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION_VGG19_URL",
    "VGG19_LAYER_NAMES",
    "VGG19Features",
    "check_layer_weights",
    "imagenet_normalization",
    "load_torchvision_vgg19",
]

log = logging.getLogger(__name__)

TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
"""torchvision's ImageNet VGG19 weights (``VGG19_Weights.IMAGENET1K_V1``, 548 MB)."""

# torchvision normalizes ImageNet inputs with these; the VGG weights expect them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Output channels of each block's convolutions (configuration "E"); "M" is a 2x2 max pool.
_CFG_E: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, 256, "M"),
    *(512, 512, 512, 512, "M"),
    *(512, 512, 512, 512, "M"),
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    block, conv = 1, 1
    for item in _CFG_E:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


VGG19_LAYER_NAMES: tuple[str, ...] = _layer_names()
"""Name of each entry of ``features``, by index: ``conv1_1`` (0), ``relu1_1`` (1), ...,
``conv5_4`` (34), ``relu5_4`` (35), ``pool5`` (36)."""


class VGG19Features(nn.Module):
    """The 37 feature layers of VGG19 (16 convs, ReLUs, 5 max pools), torchvision's layout.

    ``features`` is an ``nn.Sequential`` indexed like ``torchvision.models.vgg19().features``,
    so its state dict has the official keys (``features.0.weight`` ... ``features.34.bias``).
    The ReLUs are not in-place (unlike torchvision's), so a feature taken *before* an
    activation (``conv5_4``, ESRGAN's choice) is not overwritten by the ReLU that follows.
    Without loaded weights the convolutions are initialized as torchvision does
    (Kaiming-normal, fan-out, zero bias) from a private generator seeded with ``seed``: the
    random network is the same in every process, whatever the global RNG, so a resumed run
    rebuilds it exactly without storing it in checkpoints.

    Args:
        seed: Seed of the random initialization.

    Shapes: input ``[B, 3, H, W]``, already normalized as the weights expect (ImageNet mean and
    std for torchvision's); each feature ``[B, C, H / 2^k, W / 2^k]``.

    Example:
        >>> vgg = VGG19Features()
        >>> feats = vgg(torch.rand(1, 3, 32, 32), ["relu2_2", "conv5_4"])
        >>> [tuple(f.shape) for f in feats.values()]
        [(1, 128, 16, 16), (1, 512, 2, 2)]
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = vgg_features(_CFG_E, seed)

    @staticmethod
    def layer_index(name: str) -> int:
        """Index in ``features`` of a layer name (``"conv5_4"`` -> 34).

        Raises:
            ValueError: For an unknown name; the message lists the valid ones.
        """
        try:
            return VGG19_LAYER_NAMES.index(name)
        except ValueError:
            raise ValueError(
                f"unknown VGG19 layer {name!r}; valid names: {', '.join(VGG19_LAYER_NAMES)}"
            ) from None

    def forward(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """The features of ``layers`` (names), computed up to the deepest of them only."""
        wanted = {self.layer_index(name): name for name in layers}
        out: dict[str, torch.Tensor] = {}
        for index, layer in enumerate(self.features[: max(wanted) + 1]):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def load_torchvision_vgg19(vgg: VGG19Features, path: str | Path) -> None:
    """Load a torchvision ``vgg19`` state dict (``vgg19-dcbb9e9d.pth``) into ``vgg``, strictly.

    Every ``features.*`` key of torchvision's VGG19 must be present with its official shape;
    the classifier (``classifier.*``), which a feature extractor does not use, is dropped.
    Checkpoints that wrap the state dict (``state_dict``, ``model``, ``module.`` prefixes) are
    unwrapped by :func:`srlab.weights.read_state_dict`, which also reads with
    ``weights_only=True``.

    Args:
        vgg: The feature extractor to fill.
        path: Local file of the weights.

    Raises:
        PretrainedError: If the file cannot be read, or its keys or shapes are not those of
            torchvision's VGG19 (the message lists the differences).
    """
    load_torchvision_features(vgg, path, "VGG19", TORCHVISION_VGG19_URL)


def imagenet_normalization(channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std as ``[1, C, 1, 1]`` tensors, for inputs in ``[0, 1]``."""
    mean = torch.tensor(IMAGENET_MEAN[:channels]).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD[:channels]).view(1, -1, 1, 1)
    return mean, std


def check_layer_weights(
    layers: Sequence[str], layer_weights: Sequence[float] | None = None
) -> dict[str, float]:
    """``{layer name: weight}`` from a list of VGG19 layer names and their weights.

    Two lists rather than a mapping, because Hydra *merges* a mapping given on the command line
    into the configured one, while it replaces a list: ``layers=[relu2_2]`` then means exactly
    that.

    Args:
        layers: Layer names (:data:`VGG19_LAYER_NAMES`), without repeats.
        layer_weights: One weight per layer, or None for 1.0 each.

    Raises:
        ValueError: If ``layers`` is empty, repeats or names an unknown layer, or the weights
            do not match it in length.
    """
    layers = list(layers)
    if not layers:
        raise ValueError("no layers: name at least one VGG19 layer, e.g. [conv5_4]")
    if len(set(layers)) != len(layers):
        raise ValueError(f"a layer is repeated in {layers}")
    for name in layers:
        VGG19Features.layer_index(name)
    weights = [1.0] * len(layers) if layer_weights is None else list(layer_weights)
    if len(weights) != len(layers):
        raise ValueError(
            f"{len(weights)} layer_weights for {len(layers)} layers {layers}: give one weight per "
            "layer, or null for 1.0 each"
        )
    return {name: float(weight) for name, weight in zip(layers, weights, strict=True)}

"""srlab's copies of torchvision's ImageNet feature extractors: built, initialized and loaded
with torchvision's ``features.*`` weights one way.

The VGG19 of the perceptual loss and the AlexNet/VGG16 trunks of LPIPS and DISTS use these.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from srlab.weights.checkpoint import read_state_dict
from srlab.weights.registry import PretrainedError

__all__ = ["load_torchvision_features", "seeded_torchvision_init", "vgg_features"]

log = logging.getLogger(__name__)


def seeded_torchvision_init(features: nn.Sequential, seed: int) -> None:
    """torchvision's initialization (Kaiming-normal fan-out, zero bias) from a private
    generator: a random trunk is the same in every process, whatever the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(
                module.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            nn.init.zeros_(module.bias)


def vgg_features(config: tuple[int | str, ...], seed: int) -> nn.Sequential:
    """torchvision's VGG ``features``: 3x3 conv + ReLU per number of ``config`` (its output
    channels), a 2x2 max pool per ``"M"``, seeded with :func:`seeded_torchvision_init`."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, int(item), kernel_size=3, padding=1), nn.ReLU()]
            in_ch = int(item)
    features = nn.Sequential(*layers)
    seeded_torchvision_init(features, seed)
    return features


def load_torchvision_features(module: nn.Module, path: str | Path, name: str, url: str) -> None:
    """Load the ``features.*`` of torchvision's ``name`` state dict at ``path`` into ``module``.

    Every ``features.*`` key of ``module`` must be present with its official shape; the
    classifier (``classifier.*``), which a feature extractor does not use, is dropped. Wrapped
    state dicts (``state_dict``, ``model``, ``module.`` prefixes) are unwrapped by
    :func:`srlab.weights.read_state_dict`, which reads with ``weights_only=True``.

    Args:
        module: a feature extractor whose state dict keys are torchvision's ``features.*``.
        path: local weights file.
        name: the network, for the messages (``VGG19``, ``alexnet``, ``vgg16``).
        url: torchvision's release of those weights, which the error suggests.

    Raises:
        PretrainedError: the file cannot be read, or its keys or shapes are not those of the
            network (the message lists the first differences).
    """
    state, where = read_state_dict(path)
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    target = module.state_dict()
    missing = sorted(set(target) - set(features))
    unexpected = sorted(set(features) - set(target))
    unexpected += sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    wrong = [
        f"{k}: expected {list(target[k].shape)}, found {list(v.shape)}"
        for k, v in features.items()
        if k in target and v.shape != target[k].shape
    ]
    if missing or unexpected or wrong:
        details = [
            *(f"  missing: {k}" for k in missing[:10]),
            *(f"  unexpected: {k}" for k in unexpected[:10]),
            *(f"  wrong shape: {w}" for w in wrong[:10]),
        ]
        raise PretrainedError(
            f"{path} ({where}) is not a torchvision {name} state dict:\n"
            + "\n".join(details)
            + f"\nUse torchvision's ImageNet weights ({url})."
        )
    module.load_state_dict(features, strict=True)
    log.info("loaded %s features from %s (%s)", name, path, where)

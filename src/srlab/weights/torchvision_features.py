"""torchvision ImageNet classifiers' ``features.*`` weights into srlab's feature extractors.

The VGG19 of the perceptual loss and the AlexNet/VGG16 trunks of LPIPS and DISTS all load
torchvision's released state dicts this one way.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from srlab.weights.checkpoint import read_state_dict
from srlab.weights.registry import PretrainedError

__all__ = ["load_torchvision_features"]

log = logging.getLogger(__name__)


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

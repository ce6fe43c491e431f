"""ImageNet trunks of LPIPS and DISTS: AlexNet and VGG16 features, torchvision's key layout.

srlab defines the two feature extractors itself (torchvision is not a dependency) with exactly
the layout of ``torchvision.models.alexnet().features`` and ``vgg16().features``: an
``nn.Sequential`` whose convolutions sit at the official indices, so torchvision's published
ImageNet weights (:data:`BACKBONE_URLS`; keys ``features.{i}.weight`` / ``.bias``) load into
them unchanged. The ReLUs are not in-place, so a tapped feature is never overwritten.

- AlexNet: Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep
  Convolutional Neural Networks", NeurIPS 2012 (torchvision's "one weird trick" variant,
  Krizhevsky 2014, https://arxiv.org/abs/1404.5997: 64-192-384-256-256 channels).
- VGG16: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
  Recognition", ICLR 2015, configuration D.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from srlab.errors import ConfigError
from srlab.fetch import FetchError
from srlab.weights import PretrainedError, resolve_source
from srlab.weights.torchvision_features import (
    load_torchvision_features,
    seeded_torchvision_init,
    vgg_features,
)

__all__ = [
    "BACKBONE_URLS",
    "AlexNetFeatures",
    "VGG16Features",
    "build_backbone",
    "load_torchvision_features",
]

log = logging.getLogger(__name__)

BACKBONE_URLS = {
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
}
"""torchvision's ImageNet weights (``AlexNet_Weights.IMAGENET1K_V1``, 233 MB;
``VGG16_Weights.IMAGENET1K_V1``, 528 MB), the trunks the LPIPS and DISTS calibrations were
fitted on."""


class AlexNetFeatures(nn.Module):
    """The 13 feature layers of torchvision's AlexNet, and the five ReLU taps of LPIPS.

    ``features`` is indexed like ``torchvision.models.alexnet().features``: convolutions at 0,
    3, 6, 8, 10. :meth:`forward` returns the outputs of ``relu1`` .. ``relu5`` (indices 1, 4,
    7, 9, 11), the layers LPIPS compares.

    Args:
        seed: seed of the random initialization used until weights are loaded.

    Shapes: input ``[B, 3, H, W]`` (normalized as the weights expect); outputs with 64, 192,
    384, 256, 256 channels at strides 4, 8, 16, 16, 16.
    """

    #: Output channels of the five taps.
    channels = (64, 192, 384, 256, 256)
    #: Index in ``features`` of the last layer of each tap.
    taps = (1, 4, 7, 9, 11)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        seeded_torchvision_init(self.features, seed)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs of ``x``, computed up to the last one only."""
        return _tapped(self.features, x, self.taps)


_VGG16_CFG: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, "M"),
    *(512, 512, 512, "M"),
    *(512, 512, 512, "M"),
)


class VGG16Features(nn.Module):
    """The 31 feature layers of torchvision's VGG16, with the taps LPIPS and DISTS read.

    ``features`` is indexed like ``torchvision.models.vgg16().features`` (convolutions at 0,
    2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; max pools at 4, 9, 16, 23, 30).
    :meth:`forward` returns ``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``, ``relu5_3``
    (indices 3, 8, 15, 22, 29). DISTS replaces the max pools by L2 pooling
    (:class:`srlab.metrics.perceptual.dists.DISTS` runs ``features`` itself).

    Args:
        seed: seed of the random initialization used until weights are loaded.

    Shapes: input ``[B, 3, H, W]``; outputs with 64, 128, 256, 512, 512 channels at strides
    1, 2, 4, 8, 16.
    """

    channels = (64, 128, 256, 512, 512)
    taps = (3, 8, 15, 22, 29)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.features = vgg_features(_VGG16_CFG, seed)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped ReLU outputs of ``x``."""
        return _tapped(self.features, x, self.taps)


def _tapped(features: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    out = []
    for index, layer in enumerate(features[: taps[-1] + 1]):
        x = layer(x)
        if index in taps:
            out.append(x)
    return out


_CLASSES: dict[str, type[AlexNetFeatures] | type[VGG16Features]] = {
    "alexnet": AlexNetFeatures,
    "vgg16": VGG16Features,
}


def build_backbone(
    arch: str,
    weights: str | Path | None,
    *,
    key: str,
    random_key: str,
    allow_random_weights: bool = False,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
) -> AlexNetFeatures | VGG16Features:
    """A frozen ``arch`` trunk (``alexnet`` or ``vgg16``) with the weights at ``weights``.

    Args:
        arch: ``alexnet`` or ``vgg16``.
        weights: local path of torchvision's weights file, or a URL downloaded once into
            srlab's cache (:func:`srlab.weights.resolve_source`, through
            :func:`srlab.fetch.fetch`); None for none.
        key: the config key that names ``weights``, for messages
            (``metrics.backbones.vgg16``).
        random_key: the config key of ``allow_random_weights``, for messages.
        allow_random_weights: when there are no weights (None, a missing file, a failed
            download), use the seeded random trunk with a warning instead of failing. For
            tests only: a random trunk makes the scores meaningless.
        sha256: expected SHA-256 of the weights file, or None.
        cache_dir: download cache (default ``$SRLAB_CACHE_DIR`` or ``~/.cache/srlab/weights``).

    Raises:
        ConfigError: unknown ``arch``, or no weights and ``allow_random_weights`` false: the
            message names the key, the value and the file to give it.
        PretrainedError: the file exists but is not torchvision's ``arch``.
    """
    if arch not in _CLASSES:
        raise ConfigError(f"unknown backbone {arch!r}: use one of {', '.join(_CLASSES)}")
    module = _CLASSES[arch]()
    module.requires_grad_(False)
    module.eval()
    url = BACKBONE_URLS[arch]
    how = (
        f"set {key}=<path of {Path(url).name}> (torchvision's ImageNet {arch}: {url}), or, "
        f"for tests only, {random_key}=true"
    )
    if weights is None:
        if not allow_random_weights:
            raise ConfigError(f"{key}=null: the {arch} trunk has no weights: {how}")
        log.warning("%s: random %s weights (allow_random_weights=true)", key, arch)
        return module
    try:
        path = resolve_source(weights, sha256=sha256, cache_dir=cache_dir)
    except (PretrainedError, FetchError) as exc:
        if not allow_random_weights:
            raise ConfigError(
                f"{key}={weights}: cannot get the {arch} weights: {exc}.\nTo fix: {how}"
            ) from exc
        log.warning("%s: %s; using random %s weights (allow_random_weights=true)", key, exc, arch)
        return module
    load_torchvision_features(module, path, arch, BACKBONE_URLS[arch])
    return module

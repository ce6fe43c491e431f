"""Perceptual (VGG feature) loss of SRGAN and ESRGAN."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srlab.errors import ConfigError
from srlab.losses.frozen import exclude_from_checkpoints
from srlab.losses.vgg import (
    TORCHVISION_VGG19_URL,
    VGG19Features,
    check_layer_weights,
    imagenet_normalization,
    load_torchvision_vgg19,
)
from srlab.weights import FetchError, PretrainedError, resolve_source

__all__ = ["PerceptualLoss"]

log = logging.getLogger(__name__)

_CRITERIA = {"l1": F.l1_loss, "l2": F.mse_loss, "mse": F.mse_loss}


class PerceptualLoss(nn.Module):
    r"""Distance between VGG19 features of the SR and the HR image, summed over chosen layers.

    .. math:: \ell(\hat y, y) = \sum_l w_l \, d(\phi_l(\hat y), \phi_l(y))

    with :math:`\phi_l` the output of VGG19 layer ``l`` (ImageNet weights, frozen) and
    :math:`d` the mean absolute (``l1``) or squared (``l2``) difference.

    Settings of the papers (``layers``, ``layer_weights``, ``criterion``):

    - ESRGAN (Wang et al., ECCVW 2018, Sec. 3.4): ``[conv5_4]``, ``l1``, features taken
      *before* the activation, which are denser and keep brightness consistent. The default.
    - SRGAN (Ledig et al., CVPR 2017, Sec. 2.2.1): VGG22 = ``[relu2_2]`` or
      VGG54 = ``[relu5_4]`` (features after the activation), ``l2``; the paper rescales the
      features by 1/12.75, i.e. a loss weight of about 6e-3 relative to this module's value.
    - Real-ESRGAN (Wang et al., ICCVW 2021): ``[conv1_2, conv2_2, conv3_4, conv4_4, conv5_4]``
      with weights ``[0.1, 0.1, 1, 1, 1]``, ``l1``.

    The VGG is frozen (no gradients to its weights; gradients flow to the SR input only). Its
    weights stay out of state dicts and checkpoints (80 MB that the weights file already holds;
    BasicSR does the same; random weights come from a fixed seed, see
    :class:`~srlab.losses.vgg.VGG19Features`), and loading a state dict keeps the VGG as built.

    Shapes: ``sr`` and ``hr`` ``[B, C, H, W]`` in ``[0, 1]``, C = 3 (or 1: repeated to RGB);
    output a scalar.

    Args:
        layers: VGG19 layer names, as in :data:`srlab.losses.vgg.VGG19_LAYER_NAMES`
            (``conv5_4``, ``relu2_2``, ...). Default ``[conv5_4]`` (ESRGAN).
        layer_weights: one weight per layer, or None for 1.0 each.
        criterion: ``l1`` (ESRGAN) or ``l2`` / ``mse`` (SRGAN).
        use_input_norm: normalize inputs with the ImageNet mean and std, as the ImageNet
            weights expect.
        weights: torchvision's VGG19 weights: a local path, or a URL downloaded once into
            srlab's cache (default: torchvision's published URL, :data:`TORCHVISION_VGG19_URL`,
            which needs a network the first time). ``None`` for no weights.
        allow_random_weights: if the weights are ``None`` or cannot be fetched, use a randomly
            initialized VGG (with a warning) instead of refusing to start. For tests and smoke
            runs only: a random VGG gives a meaningless perceptual loss.
        sha256: expected SHA-256 of the weights file, or ``None``.
        cache_dir: download cache for URLs (default ``$SRLAB_CACHE_DIR`` or
            ``~/.cache/srlab/weights``).

    Raises:
        ConfigError: For unknown or repeated layers, weights that do not match them, an
            unknown criterion, or when there are no weights (none given, file missing, download
            failed) and ``allow_random_weights`` is false; the message says where to get them
            and which option to set.
        PretrainedError: If the weights file exists but is not torchvision's VGG19.

    Example:
        >>> loss = PerceptualLoss(["relu2_2"], weights=None, allow_random_weights=True)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> loss(x, x).item()
        0.0
    """

    def __init__(
        self,
        layers: Sequence[str] = ("conv5_4",),
        layer_weights: Sequence[float] | None = None,
        criterion: str = "l1",
        use_input_norm: bool = True,
        weights: str | Path | None = TORCHVISION_VGG19_URL,
        allow_random_weights: bool = False,
        sha256: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        try:
            self.layer_weights = check_layer_weights(layers, layer_weights)
        except ValueError as exc:
            raise ConfigError(f"model.loss.perceptual.layers: {exc}") from None
        if criterion not in _CRITERIA:
            raise ConfigError(
                f"model.loss.perceptual.criterion={criterion!r} is not one of "
                f"{', '.join(_CRITERIA)}"
            )
        self.criterion = criterion
        self.use_input_norm = use_input_norm
        mean, std = imagenet_normalization()
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

        self.vgg = VGG19Features()
        self.weights_source = self._load_weights(weights, allow_random_weights, sha256, cache_dir)
        # Frozen: no optimizer sees it and no gradient is stored for it. (VGG has no batch norm
        # or dropout, so train/eval mode makes no difference.)
        self.vgg.requires_grad_(False)
        exclude_from_checkpoints(self, "vgg")

    def _load_weights(
        self,
        weights: str | Path | None,
        allow_random: bool,
        sha256: str | None,
        cache_dir: str | Path | None,
    ) -> str | None:
        """Fill ``self.vgg`` from ``weights``; return the source, or None for random weights."""
        how = (
            f"set model.loss.perceptual.weights=<path of vgg19-dcbb9e9d.pth> (torchvision's "
            f"ImageNet VGG19: {TORCHVISION_VGG19_URL}), or, for tests only, "
            "model.loss.perceptual.allow_random_weights=true"
        )
        if weights is None:
            if not allow_random:
                raise ConfigError(f"the perceptual loss has no VGG19 weights: {how}")
            log.warning("perceptual loss: random VGG19 weights (allow_random_weights=true)")
            return None
        try:
            path = resolve_source(weights, sha256=sha256, cache_dir=cache_dir)
        except (PretrainedError, FetchError) as exc:  # a missing file, a failed download
            if not allow_random:
                raise ConfigError(
                    f"the perceptual loss cannot get its VGG19 weights: {exc}.\nTo fix: {how}"
                ) from exc
            log.warning(
                "perceptual loss: %s; using random VGG19 weights (allow_random_weights=true)", exc
            )
            return None
        load_torchvision_vgg19(self.vgg, path)
        return str(weights)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:  # a Y-channel network's output: VGG wants RGB
            images = images.expand(-1, 3, -1, -1)
        if self.use_input_norm:
            images = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return images

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The weighted sum over layers of the feature distances between ``sr`` and ``hr``."""
        if sr.shape != hr.shape:
            raise ValueError(
                f"PerceptualLoss: sr shape {tuple(sr.shape)} != hr shape {tuple(hr.shape)}"
            )
        layers = list(self.layer_weights)
        sr_features = self.vgg(self._prepare(sr), layers)
        with torch.no_grad():
            hr_features = self.vgg(self._prepare(hr.detach()), layers)
        distance = _CRITERIA[self.criterion]
        # Distances in float32: bf16/fp16 features of deep layers are large and coarse.
        terms = [
            weight * distance(sr_features[name].float(), hr_features[name].float())
            for name, weight in self.layer_weights.items()
        ]
        return torch.stack(terms).sum()

    def extra_repr(self) -> str:
        """Layers, criterion and where the weights came from, for ``print(model)``."""
        source = self.weights_source or "random (allow_random_weights)"
        return f"layer_weights={self.layer_weights}, criterion={self.criterion!r}, vgg={source}"

"""Perceptual metrics as training losses (LPIPS, DISTS), and a weighted sum of loss terms.

:class:`LPIPSLoss` and :class:`DISTSLoss` are the metrics of :mod:`srlab.metrics.perceptual`
(the same code, checked against the reference packages) averaged over the batch, with
gradients to the SR image. They fit the GAN task's perceptual slot as they are
(``model.loss.perceptual``, see docs/perceptual_metrics.md), and :class:`WeightedLoss` adds
them to a pixel loss for a regression model (``model.loss``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from srlab.errors import ConfigError
from srlab.losses.frozen import exclude_from_checkpoints
from srlab.metrics.perceptual import BACKBONE_URLS, DISTS, LPIPS

__all__ = ["DISTSLoss", "LPIPSLoss", "WeightedLoss"]


class _FrozenMetricLoss(nn.Module):
    """A frozen metric network averaged over the batch; its weights stay out of state dicts
    (they are rebuilt from their sources, as :class:`~srlab.losses.PerceptualLoss` does with
    its VGG), and loading a state dict without them keeps the ones built."""

    metric: nn.Module

    def __init__(self) -> None:
        super().__init__()
        exclude_from_checkpoints(self, "metric")

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The batch mean of the metric between ``sr`` and ``hr`` (gradients flow to ``sr``)."""
        if sr.shape != hr.shape:
            raise ValueError(
                f"{type(self).__name__}: sr shape {tuple(sr.shape)} != hr shape {tuple(hr.shape)}"
            )
        return self.metric(sr, hr.detach()).mean()

    def train(self, mode: bool = True) -> _FrozenMetricLoss:
        """Keep the metric in eval mode whatever the task's mode (it has no dropout or batch
        norm that training should change)."""
        super().train(mode)
        self.metric.eval()
        return self


class LPIPSLoss(_FrozenMetricLoss):
    """LPIPS (Zhang et al., CVPR 2018) between SR and HR as a loss, the batch mean.

    The loss of :class:`srlab.metrics.perceptual.LPIPS`: inputs in [0, 1] (not clamped, so a
    network's overshoot gets gradients), trunk frozen, linear layers of lpips 0.1 (shipped).

    Args:
        net: ``vgg`` (the usual choice for training) or ``alex``.
        weights: torchvision's ImageNet trunk, a path or URL; ``"default"``: torchvision's URL
            for ``net`` (:data:`~srlab.metrics.perceptual.BACKBONE_URLS`); None for none.
        calibration: the linear layers (path or URL); None: the shipped copy.
        allow_random_weights: without trunk weights, a seeded random trunk (warning); tests only.

    Shapes: ``sr``, ``hr`` ``[B, C, H, W]``, C 3 (or 1); output a scalar.

    Example:
        >>> loss = LPIPSLoss("alex", weights=None, allow_random_weights=True)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> loss(x, x).item()
        0.0
    """

    def __init__(
        self,
        net: str = "vgg",
        weights: str | Path | None = "default",
        calibration: str | Path | None = None,
        allow_random_weights: bool = False,
    ) -> None:
        super().__init__()
        if weights == "default":
            weights = BACKBONE_URLS["alexnet" if net == "alex" else "vgg16"]
        self.metric = LPIPS(
            net,
            backbone=weights,
            calibration=calibration,
            allow_random_weights=allow_random_weights,
            backbone_key="model.loss.<term>.weights",
            random_key="model.loss.<term>.allow_random_weights",
        )


class DISTSLoss(_FrozenMetricLoss):
    """DISTS (Ding et al., TPAMI 2022) between SR and HR as a loss, the batch mean.

    The authors train with it as it is (``DISTS_pytorch.DISTS(x, y, require_grad=True)``); here
    :class:`srlab.metrics.perceptual.DISTS`, VGG16 frozen, ``alpha``/``beta`` shipped.

    Args:
        weights: torchvision's ImageNet VGG16, a path or URL (default torchvision's URL).
        calibration: ``alpha``/``beta`` (path or URL); None: the shipped copy.
        allow_random_weights: without trunk weights, a seeded random VGG16; tests only.

    Example:
        >>> loss = DISTSLoss(weights=None, allow_random_weights=True)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> abs(loss(x, x).item()) < 1e-6
        True
    """

    def __init__(
        self,
        weights: str | Path | None = BACKBONE_URLS["vgg16"],
        calibration: str | Path | None = None,
        allow_random_weights: bool = False,
    ) -> None:
        super().__init__()
        self.metric = DISTS(
            backbone=weights,
            calibration=calibration,
            allow_random_weights=allow_random_weights,
            backbone_key="model.loss.<term>.weights",
            random_key="model.loss.<term>.allow_random_weights",
        )


class WeightedLoss(nn.Module):
    r"""A weighted sum of loss terms: :math:`\ell = \sum_k w_k \ell_k(sr, hr)`.

    For a regression model that trains on a pixel loss and a perceptual one at once, e.g. L1 +
    0.1 LPIPS-VGG::

        model:
          loss:
            _target_: srlab.losses.WeightedLoss
            terms:
              l1: {_target_: torch.nn.L1Loss}
              lpips: {_target_: srlab.losses.LPIPSLoss, net: vgg}
            weights: {l1: 1.0, lpips: 0.1}

    Args:
        terms: ``{name: loss module}``, each called as ``loss(sr, hr)`` and returning a scalar.
        weights: ``{name: weight}`` for every term (a missing one is an error, so a typo
            cannot silently drop a term).

    Raises:
        ConfigError: no terms, or names of ``terms`` and ``weights`` that differ.

    Example:
        >>> loss = WeightedLoss({"l1": nn.L1Loss(), "l2": nn.MSELoss()}, {"l1": 1.0, "l2": 2.0})
        >>> loss(torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)).item()
        3.0
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        if not terms:
            raise ConfigError("model.loss.terms is empty: give at least one loss term")
        if set(terms) != set(weights):
            raise ConfigError(
                f"model.loss.terms {sorted(terms)} and model.loss.weights {sorted(weights)} "
                "must name the same terms: give one weight per term"
            )
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {name: float(weights[name]) for name in terms}

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The weighted sum of every term (in float32)."""
        return torch.stack(
            [self.weights[name] * term(sr, hr).float() for name, term in self.terms.items()]
        ).sum()

    def extra_repr(self) -> str:
        """The weights, for ``print(model)``."""
        return f"weights={self.weights}"

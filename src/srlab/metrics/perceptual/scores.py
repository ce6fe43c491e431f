"""Perceptual metrics as torchmetrics ``Metric`` objects, chosen by name from config.

:class:`PerceptualMetrics` is the ``metrics`` config node (``metrics.perceptual=[lpips,niqe]``,
backbone sources, calibration files); :meth:`PerceptualMetrics.scorers` builds each scoring
network once, and :class:`PerceptualScore` is the mean-over-images ``Metric`` of one of them,
with the DDP-summable state of srlab's PSNR/SSIM (a sum and a count). The scoring network is
*shared*, not registered as a submodule: every evaluation set of every stage reads the same
VGG16, and neither checkpoints nor EMA copies hold it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from srlab.errors import ConfigError
from srlab.metrics.perceptual.backbones import BACKBONE_URLS
from srlab.metrics.perceptual.dists import DISTS
from srlab.metrics.perceptual.lpips import LPIPS
from srlab.metrics.perceptual.niqe import NIQE
from srlab.metrics.sr_metrics import quantize

__all__ = ["FULL_REFERENCE", "NO_REFERENCE", "PerceptualMetrics", "PerceptualScore"]

#: Full-reference perceptual metrics (SR against HR), lower is better.
FULL_REFERENCE = ("lpips", "lpips_vgg", "dists")
#: No-reference metrics (SR alone), lower is better.
NO_REFERENCE = ("niqe",)
_CONFIG_KEYS = {
    "perceptual",
    "backbones",
    "calibration",
    "niqe_crop_border",
    "allow_random_weights",
}


class _Shared:
    """Holds a scoring network without registering it: deep copies (EMA, ``clone``) and
    ``state_dict`` see no submodule, and every copy scores with the one network."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __deepcopy__(self, memo: dict) -> _Shared:
        return self


class PerceptualScore(Metric):
    """Mean over images of a perceptual score (LPIPS, DISTS or NIQE), lower is better.

    Like :class:`srlab.metrics.PSNRY`, ``sr`` (and ``hr``) are first clipped and quantized to
    8-bit levels, as the PNG files a paper scores would be; RGB is scored whole (no border is
    shaved: LPIPS, DISTS and NIQE are computed on full images in their references), grayscale
    images as their single channel. ``compute()`` is ``sum_i score_i / N``; the per-image
    scores of the latest :meth:`update` are in :attr:`last_scores`.

    Args:
        scorer: an :class:`LPIPS`, :class:`DISTS` (``scorer(sr, hr) -> [B]``) or :class:`NIQE`
            (``scorer(sr) -> [B]``); moved to the inputs' device at the first update.
        reference: whether ``scorer`` compares with ``hr`` (full-reference) or scores ``sr``
            alone.
        kwargs: passed to :class:`torchmetrics.Metric`.

    Example:
        >>> from srlab.metrics.perceptual import LPIPS
        >>> metric = PerceptualScore(LPIPS(backbone=None, allow_random_weights=True))
        >>> x = torch.rand(2, 3, 32, 32)
        >>> metric.update(x, x)
        >>> metric.compute().item()
        0.0
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    sum: Tensor
    count: Tensor

    def __init__(self, scorer: nn.Module, reference: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._scorer = _Shared(scorer)
        self.reference = reference
        #: Per-image scores of the latest update (float64 ``[B]``); not reduced over ranks.
        self.last_scores: Tensor | None = None
        self.add_state("sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, sr: Tensor, hr: Tensor | None = None) -> None:
        """Add the scores of a batch ``sr`` ``[B, C, H, W]`` in [0, 1] (against ``hr``)."""
        if self.reference and hr is None:
            raise ValueError(f"{type(self._scorer.module).__name__} needs the HR image")
        scorer = self._scorer.module.to(sr.device)
        with torch.no_grad():
            levels = quantize(sr.detach().float()) / 255
            if self.reference:
                scores = scorer(levels, quantize(hr.detach().float()) / 255)
            else:
                scores = scorer(levels)
        scores = scores.to(torch.float64)
        self.last_scores = scores
        self.sum += scores.sum().to(self.sum)
        self.count += scores.numel()

    def compute(self) -> Tensor:
        """Mean of the per-image scores (float64 scalar); NaN before any update."""
        return self.sum / self.count


@dataclass(frozen=True)
class PerceptualMetrics:
    """Which perceptual metrics to score, and where their weights come from (``metrics.*``).

    PSNR and SSIM are always scored; these are added beside them, logged as
    ``<stage>/<Set>/<name>`` (``val/Set5/lpips``), because their trunks are heavy to load and
    run (VGG16: 528 MB of weights and ~15 GFLOPs per 256x256 image).

    Args:
        perceptual: names among :data:`FULL_REFERENCE` (``lpips``: AlexNet LPIPS, the
            paper's metric; ``lpips_vgg``; ``dists``) and :data:`NO_REFERENCE` (``niqe``).
        backbones: ``{"alexnet": source, "vgg16": source}``: torchvision's ImageNet weights,
            a local path or a URL fetched once into srlab's cache; default torchvision's URLs.
        calibration: ``{name: source}`` for ``lpips``, ``lpips_vgg``, ``dists``, ``niqe``;
            null or missing: the copies shipped with srlab.
        niqe_crop_border: pixels cut from every side before NIQE (BasicSR's ``crop_border``).
        allow_random_weights: without trunk weights, score with seeded random trunks (a
            warning); for tests and smoke runs only.

    Raises:
        ConfigError: an unknown or repeated name; the message lists the valid ones.
    """

    perceptual: tuple[str, ...] = ()
    backbones: Mapping[str, str | None] = field(default_factory=lambda: dict(BACKBONE_URLS))
    calibration: Mapping[str, str | None] = field(default_factory=dict)
    niqe_crop_border: int = 0
    allow_random_weights: bool = False

    def __post_init__(self) -> None:
        names = tuple(self.perceptual)
        object.__setattr__(self, "perceptual", names)
        valid = FULL_REFERENCE + NO_REFERENCE
        unknown = [n for n in names if n not in valid]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"metrics.perceptual={list(names)}: "
                + (f"unknown {unknown}; " if unknown else "a name is repeated; ")
                + f"use names among {', '.join(valid)} (PSNR and SSIM are always scored)"
            )
        for arch in self.backbones:
            if arch not in BACKBONE_URLS:
                raise ConfigError(
                    f"metrics.backbones.{arch}: unknown backbone; use {', '.join(BACKBONE_URLS)}"
                )

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> PerceptualMetrics:
        """From the ``metrics`` config node (None: PSNR/SSIM only).

        Raises:
            ConfigError: a key that is not one of this class's fields.
        """
        if not node:
            return cls()
        node = dict(node)
        unknown = sorted(set(node) - _CONFIG_KEYS)
        if unknown:
            raise ConfigError(
                f"metrics.{unknown[0]} is not a metrics option: use {', '.join(sorted(_CONFIG_KEYS))}"
            )
        backbones = {**BACKBONE_URLS, **dict(node.get("backbones") or {})}
        return cls(
            perceptual=tuple(node.get("perceptual") or ()),
            backbones=backbones,
            calibration=dict(node.get("calibration") or {}),
            niqe_crop_border=int(node.get("niqe_crop_border") or 0),
            allow_random_weights=bool(node.get("allow_random_weights", False)),
        )

    @property
    def full_reference(self) -> tuple[str, ...]:
        """The chosen full-reference metrics, in order."""
        return tuple(n for n in self.perceptual if n in FULL_REFERENCE)

    @property
    def no_reference(self) -> tuple[str, ...]:
        """The chosen no-reference metrics, in order."""
        return tuple(n for n in self.perceptual if n in NO_REFERENCE)

    def scorer(self, name: str) -> nn.Module:
        """Build the scoring network of ``name`` (loads its weights)."""
        calibration = self.calibration.get(name)
        common = {
            "calibration": calibration,
            "allow_random_weights": self.allow_random_weights,
            "random_key": "metrics.allow_random_weights",
        }
        if name in ("lpips", "lpips_vgg"):
            arch = "alexnet" if name == "lpips" else "vgg16"
            return LPIPS(
                "alex" if name == "lpips" else "vgg",
                backbone=self.backbones.get(arch),
                backbone_key=f"metrics.backbones.{arch}",
                **common,
            )
        if name == "dists":
            return DISTS(
                backbone=self.backbones.get("vgg16"),
                backbone_key="metrics.backbones.vgg16",
                **common,
            )
        if name == "niqe":
            return NIQE(crop_border=self.niqe_crop_border, params=calibration)
        raise ConfigError(f"unknown perceptual metric {name!r}")

    def scorers(self, names: Sequence[str] | None = None) -> dict[str, nn.Module]:
        """``{name: scoring network}`` for ``names`` (default: all chosen), each built once."""
        return {name: self.scorer(name) for name in (self.perceptual if names is None else names)}

    @staticmethod
    def metrics(scorers: Mapping[str, nn.Module], reference: bool = True) -> dict[str, Metric]:
        """Fresh :class:`PerceptualScore` metrics over shared ``scorers``; with ``reference``
        false (no HR), only the no-reference ones."""
        return {
            name: PerceptualScore(scorer, reference=name in FULL_REFERENCE)
            for name, scorer in scorers.items()
            if reference or name in NO_REFERENCE
        }

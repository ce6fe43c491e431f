"""DISTS, deep image structure and texture similarity.

Ding, Ma, Wang and Simoncelli, "Image Quality Assessment: Unifying Structure and Texture
Similarity", IEEE TPAMI 44(5), 2022 (arXiv 2004.07728), as the authors' code computes it
(https://github.com/dingkeyan93/DISTS, PyPI ``DISTS_pytorch``), whose ``alpha``/``beta`` weights
srlab ships (``weights/dists_alpha_beta.safetensors``, MIT, see ``weights/ATTRIBUTION.md``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from srlab.errors import ConfigError
from srlab.metrics.perceptual.backbones import BACKBONE_URLS, build_backbone

__all__ = ["DISTS"]

_CHANNELS = (3, 64, 128, 256, 512, 512)  # the image itself, then the five VGG16 stages
_C1 = _C2 = 1e-6
# The ImageNet statistics torchvision's VGG16 weights expect (DISTS normalizes [0, 1] input).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
# VGG16 max pools that DISTS replaces by L2 pooling; the stage boundaries of its taps.
_POOLS = (4, 9, 16, 23)
_STAGE_ENDS = (4, 9, 16, 23, 30)


def calibration_file() -> Path:
    """The shipped DISTS ``alpha``/``beta`` file."""
    folder = resources.files("srlab.metrics.perceptual") / "weights"
    return Path(str(folder / "dists_alpha_beta.safetensors"))


def _hanning_filter() -> torch.Tensor:
    # np.hanning(5)[1:-1] = [0.5, 1, 0.5]; its outer product, normalized to sum 1.
    a = torch.tensor([0.5, 1.0, 0.5])
    window = a[:, None] * a[None, :]
    return (window / window.sum()).view(1, 1, 3, 3)


class DISTS(nn.Module):
    r"""DISTS distance of two images, per image (0 for identical images, lower is closer).

    VGG16 (ImageNet weights, max pools replaced by L2 pooling: a 3x3 Hanning window, stride 2,
    on the squared input, then the square root) gives six representations: the image and the
    outputs of stages 1-5 (``relu1_2 .. relu5_3``). For each channel :math:`j` of stage
    :math:`i`, with global means :math:`\mu`, variances :math:`\sigma^2` and covariance
    :math:`\sigma_{xy}` over the spatial positions,

    .. math:: l = \frac{2\mu_x\mu_y + c_1}{\mu_x^2 + \mu_y^2 + c_1}, \quad
        s = \frac{2\sigma_{xy} + c_2}{\sigma_x^2 + \sigma_y^2 + c_2}, \quad
        D = 1 - \sum_{i,j} (\alpha_{ij} l_{ij} + \beta_{ij} s_{ij})

    with :math:`c_1 = c_2 = 10^{-6}` and the learned :math:`\alpha, \beta` normalized to sum 1
    together. Matches ``DISTS_pytorch.DISTS()(x, y)`` to float rounding
    (tests/test_perceptual_metrics.py).

    Frozen but differentiable in its inputs: :class:`srlab.losses.DISTSLoss` trains with it.

    Args:
        backbone: torchvision's ImageNet VGG16 weights, a path or a URL fetched once into
            srlab's cache (default torchvision's URL); None for none.
        calibration: ``alpha``/``beta``, a path or URL of a safetensors file or of
            ``DISTS_pytorch``'s ``weights.pt``; None: srlab's copy of the authors' (package data).
        allow_random_weights: without trunk weights, use a seeded random VGG16 (warning);
            for tests only.
        backbone_key: the config key of ``backbone``, named in error messages.
        random_key: the config key of ``allow_random_weights``, named in error messages.

    Shapes: ``forward(x, y)``: ``[B, C, H, W]`` in [0, 1], C 3 (or 1: repeated), equal shapes,
    at least 32 pixels per side; returns ``[B]`` float32.

    Example:
        >>> metric = DISTS(backbone=None, allow_random_weights=True)
        >>> x = torch.rand(1, 3, 64, 64)
        >>> abs(metric(x, x).item()) < 1e-6
        True
    """

    def __init__(
        self,
        backbone: str | Path | None = BACKBONE_URLS["vgg16"],
        calibration: str | Path | None = None,
        allow_random_weights: bool = False,
        backbone_key: str = "backbone",
        random_key: str = "allow_random_weights",
    ) -> None:
        super().__init__()
        self.trunk = build_backbone(
            "vgg16",
            backbone,
            key=backbone_key,
            random_key=random_key,
            allow_random_weights=allow_random_weights,
        )
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("window", _hanning_filter(), persistent=False)
        self.alpha = nn.Parameter(torch.empty(1, sum(_CHANNELS), 1, 1))
        self.beta = nn.Parameter(torch.empty(1, sum(_CHANNELS), 1, 1))
        self._load_calibration(calibration)
        self.requires_grad_(False)
        self.eval()

    def _load_calibration(self, calibration: str | Path | None) -> None:
        from srlab.weights import read_state_dict, resolve_source

        if calibration is None:
            state = load_file(calibration_file())
        else:
            state, _ = read_state_dict(resolve_source(calibration))
        shape = self.alpha.shape
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != {"alpha": tuple(shape), "beta": tuple(shape)}:
            raise ConfigError(
                f"DISTS calibration {calibration or calibration_file()}: expected alpha and beta "
                f"of shape {tuple(shape)}, found {found}"
            )
        self.alpha.data.copy_(state["alpha"].float())
        self.beta.data.copy_(state["beta"].float())

    def _l2pool(self, x: torch.Tensor) -> torch.Tensor:
        window = self.window.to(x.dtype).expand(x.shape[1], -1, -1, -1)
        out = F.conv2d(x.square(), window, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()

    def _representations(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = [x]
        layers = self.trunk.features
        for index in range(_STAGE_ENDS[-1]):
            h = self._l2pool(h) if index in _POOLS else layers[index](h)
            if index + 1 in _STAGE_ENDS:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """DISTS of each image pair: ``[B]``."""
        if x.shape != y.shape:
            raise ValueError(f"DISTS: shapes differ: {tuple(x.shape)} and {tuple(y.shape)}")
        both = torch.cat([x, y])
        if both.shape[1] == 1:
            both = both.expand(-1, 3, -1, -1)
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, _CHANNELS, dim=1)
        betas = torch.split(self.beta / total, _CHANNELS, dim=1)
        # DISTS' texture term compares the channel means, its structure term the correlations.
        texture = structure = x.new_zeros(x.shape[0], dtype=torch.float32)
        for feature, alpha, beta in zip(self._representations(both), alphas, betas, strict=True):
            fx, fy = feature.float().chunk(2)
            mx, my = fx.mean(dim=(2, 3), keepdim=True), fy.mean(dim=(2, 3), keepdim=True)
            mean_sim = (2 * mx * my + _C1) / (mx.square() + my.square() + _C1)
            vx = (fx - mx).square().mean(dim=(2, 3), keepdim=True)
            vy = (fy - my).square().mean(dim=(2, 3), keepdim=True)
            cov = (fx * fy).mean(dim=(2, 3), keepdim=True) - mx * my
            correlation_sim = (2 * cov + _C2) / (vx + vy + _C2)
            texture = texture + (alpha * mean_sim).sum(dim=(1, 2, 3))
            structure = structure + (beta * correlation_sim).sum(dim=(1, 2, 3))
        return 1 - (texture + structure)

"""LPIPS, the learned perceptual image patch similarity (AlexNet and VGG16 trunks).

Zhang, Isola, Efros, Shechtman and Wang, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018, https://arxiv.org/abs/1801.03924; version 0.1 of the official
code (https://github.com/richzhang/PerceptualSimilarity, PyPI ``lpips``), whose linear
calibration layers srlab ships (``weights/lpips_v0.1_*.safetensors``, BSD-2-Clause, see
``weights/ATTRIBUTION.md``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from srlab.errors import ConfigError
from srlab.metrics.perceptual.backbones import BACKBONE_URLS, build_backbone

__all__ = ["LPIPS", "LPIPS_NETS"]

#: ``net`` -> the trunk it runs on.
LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}

# The ScalingLayer of lpips 0.1: inputs in [-1, 1] are moved to the ImageNet statistics as
# they look in that range ((mean * 2 - 1), std * 2).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_EPS = 1e-10


def calibration_file(net: str) -> Path:
    """The shipped LPIPS v0.1 linear layers of trunk ``net`` (``alex`` or ``vgg``)."""
    folder = resources.files("srlab.metrics.perceptual") / "weights"
    return Path(str(folder / f"lpips_v0.1_{net}.safetensors"))


class LPIPS(nn.Module):
    r"""LPIPS distance of two images, per image (lower is more similar).

    .. math:: d(x, y) = \sum_l \frac{1}{H_l W_l} \sum_{h, w}
        \lVert w_l \odot (\hat\phi_l(x)_{hw} - \hat\phi_l(y)_{hw}) \rVert_2^2

    with :math:`\hat\phi_l` the channel-normalized (unit L2 norm, eps 1e-10) activation of
    trunk layer :math:`l` (AlexNet ``relu1..5`` or VGG16 ``relu1_2 .. relu5_3``) and
    :math:`w_l` the learned non-negative channel weights (a 1x1 convolution), for inputs
    mapped from [0, 1] to [-1, 1] and shifted/scaled to the ImageNet statistics as lpips 0.1
    does. Matches ``lpips.LPIPS(net=..., version="0.1")(2x - 1, 2y - 1)`` to float rounding
    (tests/test_perceptual_metrics.py).

    The module is frozen (no parameter requires gradients) but differentiable in its inputs,
    so it serves as a loss too (:class:`srlab.losses.LPIPSLoss`).

    Args:
        net: ``alex`` (the paper's recommended metric) or ``vgg`` (closer to a traditional
            perceptual loss, the usual choice for training).
        backbone: torchvision's ImageNet weights of the trunk, a local path or a URL fetched
            once into srlab's cache (default: torchvision's URL,
            :data:`~srlab.metrics.perceptual.backbones.BACKBONE_URLS`); None for none.
        calibration: the linear layers, a path or URL of a safetensors file with keys
            ``lin0.weight .. lin4.weight`` or of lpips' own ``.pth``; None: srlab's copy of
            lpips 0.1's (package data).
        allow_random_weights: when the trunk's weights cannot be had, run a seeded random
            trunk (with a warning) instead of failing; for tests only.
        backbone_key: the config key of ``backbone``, named in error messages.
        random_key: the config key of ``allow_random_weights``, named in error messages.

    Shapes: ``forward(x, y)``: ``[B, C, H, W]`` in [0, 1], C 3 (or 1: repeated), equal
    shapes; returns ``[B]`` float32. AlexNet needs at least 16 pixels per side (its first
    convolution has stride 4 and three 3x3 max pools follow).

    Raises:
        ConfigError: unknown ``net``, or no trunk weights (see ``allow_random_weights``).

    Example:
        >>> metric = LPIPS("alex", backbone=None, allow_random_weights=True)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> metric(x, x).tolist()
        [0.0, 0.0]
    """

    def __init__(
        self,
        net: str = "alex",
        backbone: str | Path | None = BACKBONE_URLS["alexnet"],
        calibration: str | Path | None = None,
        allow_random_weights: bool = False,
        backbone_key: str = "backbone",
        random_key: str = "allow_random_weights",
    ) -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ConfigError(f"LPIPS net={net!r}: use one of {', '.join(LPIPS_NETS)}")
        self.net = net
        self.trunk = build_backbone(
            LPIPS_NETS[net],
            backbone,
            key=backbone_key,
            random_key=random_key,
            allow_random_weights=allow_random_weights,
        )
        self.lins = nn.ModuleList(
            nn.Conv2d(channels, 1, kernel_size=1, bias=False) for channels in self.trunk.channels
        )
        self._load_calibration(calibration)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _load_calibration(self, calibration: str | Path | None) -> None:
        from srlab.weights import read_state_dict, resolve_source

        if calibration is None:
            state = load_file(calibration_file(self.net))
        else:
            path = resolve_source(calibration)
            state, _ = read_state_dict(path)
            # lpips' own files name the 1x1 convolution linK.model.1.weight (after a dropout).
            state = {k.replace(".model.1.", "."): v for k, v in state.items()}
        expected = {f"lin{i}.weight": lin.weight.shape for i, lin in enumerate(self.lins)}
        found = {k: v.shape for k, v in state.items()}
        if found != expected:
            raise ConfigError(
                f"LPIPS calibration {calibration or calibration_file(self.net)} does not fit the "
                f"{self.net} trunk: expected {dict(expected)}, found {found}"
            )
        for index, lin in enumerate(self.lins):
            lin.weight.data.copy_(state[f"lin{index}.weight"].float())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS of each image pair: ``[B]``."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: shapes differ: {tuple(x.shape)} and {tuple(y.shape)}")
        # One trunk pass over both images.
        both = torch.cat([x, y]).expand(-1, 3, -1, -1) if x.shape[1] == 1 else torch.cat([x, y])
        both = ((both * 2 - 1) - self.shift.to(both.dtype)) / self.scale.to(both.dtype)
        total = x.new_zeros(x.shape[0], dtype=torch.float32)
        for feature, lin in zip(self.trunk(both), self.lins, strict=True):
            feature = feature.float()
            feature = feature / (feature.square().sum(dim=1, keepdim=True).sqrt() + _EPS)
            fx, fy = feature.chunk(2)
            total = total + lin((fx - fy).square()).mean(dim=(1, 2, 3))
        return total

    def extra_repr(self) -> str:
        """The trunk, for ``print(module)``."""
        return f"net={self.net!r}"

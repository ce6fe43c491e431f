"""Perceptual metrics: LPIPS (AlexNet, VGG16) and DISTS (full-reference), NIQE (no-reference).

Implemented in torch from the papers and the authors' code, batched, on any device, and checked
against the reference packages (``lpips``, ``DISTS_pytorch``) and a transcription of BasicSR's
NIQE (tests/test_perceptual_metrics.py, docs/perceptual_metrics.md). The small calibration
files ship with srlab (``weights/``, with their licences in ``weights/ATTRIBUTION.md``); the
ImageNet trunks come from a path or URL (:data:`BACKBONE_URLS`).
"""

from srlab.metrics.perceptual.backbones import (
    BACKBONE_URLS,
    AlexNetFeatures,
    VGG16Features,
    build_backbone,
)
from srlab.metrics.perceptual.dists import DISTS
from srlab.metrics.perceptual.lpips import LPIPS
from srlab.metrics.perceptual.niqe import NIQE, niqe_y
from srlab.metrics.perceptual.scores import (
    FULL_REFERENCE,
    NO_REFERENCE,
    PerceptualMetrics,
    PerceptualScore,
)

__all__ = [
    "BACKBONE_URLS",
    "DISTS",
    "FULL_REFERENCE",
    "LPIPS",
    "NIQE",
    "NO_REFERENCE",
    "AlexNetFeatures",
    "PerceptualMetrics",
    "PerceptualScore",
    "VGG16Features",
    "build_backbone",
    "niqe_y",
]

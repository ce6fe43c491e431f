"""SR networks as pure ``nn.Module``s (no Lightning, no Hydra), one architecture per file.

Every network maps an LR batch ``[B, C, h, w]`` in ``[0, 1]`` to SR ``[B, C', s*h, s*w]`` and
exposes ``upscale`` and ``num_in_ch``. Shared building blocks live in :mod:`srlab.models.common`.
Networks know nothing of weight files: :func:`srlab.weights.load_pretrained` fills them.
"""

from srlab.models.bicubic import Bicubic
from srlab.models.common import MeanShift, ResidualBlockNoBN, Upsample, conv3x3
from srlab.models.complexity import NetworkComplexity, summary
from srlab.models.edsr import EDSR
from srlab.models.espcn import ESPCN
from srlab.models.fsrcnn import FSRCNN
from srlab.models.residual import BicubicResidual
from srlab.models.rrdbnet import RRDBNet
from srlab.models.srcnn import SRCNN
from srlab.models.vdsr import VDSR

__all__ = [
    "Bicubic",
    "EDSR",
    "ESPCN",
    "FSRCNN",
    "SRCNN",
    "VDSR",
    "RRDBNet",
    "NetworkComplexity",
    "summary",
    "BicubicResidual",
    "MeanShift",
    "ResidualBlockNoBN",
    "Upsample",
    "conv3x3",
]

"""JPEG compression of a batch, each image at its own quality: kornia's codec.

:func:`kornia.enhance.jpeg_codec_differentiable` (Reich et al., 2024) encodes and decodes in
the image's device and batch: YCbCr, 4:2:0 chroma, 8x8 DCT, the standard (IJG) quantization
tables scaled by the quality. It rounds with a cubic-smoothed rounding so that it has a
gradient; the values it gives differ from a real encoder's by a little, measured against
Pillow's (libjpeg) in ``tests/degradations/test_jpeg.py``.
"""

from __future__ import annotations

import torch
from kornia.enhance import jpeg_codec_differentiable


def jpeg(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress ``images`` [B, 3, H, W] in [0, 1] (clamped first, as Real-ESRGAN does) at
    the per-image ``quality`` [B] (1..100); returns [B, 3, H, W] in [0, 1]."""
    quality = quality.to(device=images.device, dtype=torch.float32).reshape(-1)
    out = jpeg_codec_differentiable(images.clamp(0, 1).float(), quality)
    return out.clamp(0, 1).to(images.dtype)

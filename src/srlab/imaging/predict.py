"""Whole-image super-resolution with a trained network: LR in, SR out, for images of any size.

:func:`make_predictor` wraps a network into LR ``[B, C, h, w]`` -> SR ``[B, C, s*h, s*w]``:
whole or tiled (bounded memory, seamless with enough overlap), optionally as the x8
self-ensemble, in fp32, bf16 or fp16 autocast. :func:`upscale_images` runs it on a batch of
:class:`LoadedImage` (colour, plus an alpha channel upscaled on its own). :func:`resolve_device`
is how every entry point (evaluation, inference, the benchmark) turns ``device=auto|cpu|cuda``
into a ``torch.device``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from srlab.errors import ConfigError
from srlab.imaging.imresize import imresize
from srlab.imaging.tiling import (
    AUTO,
    ForwardMemory,
    budget_tile,
    memory_budget,
    self_ensemble,
    tiled_forward,
)
from srlab.models.channels import super_resolve

log = logging.getLogger(__name__)

Predictor = Callable[[torch.Tensor], torch.Tensor]

#: ``precision`` values and the autocast dtype each runs the network in (None: plain fp32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "32-true": None,
    "bf16": torch.bfloat16,
    "bf16-mixed": torch.bfloat16,
    "16": torch.float16,
    "16-mixed": torch.float16,
}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other name as ``torch.device``.

    Raises:
        ConfigError: a name torch does not know, or CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device={name!r}: {error}. Use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available here; use device=cpu")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32, no autocast).

    Raises:
        ConfigError: fp16 on a CPU, where PyTorch has no fast fp16 convolutions.
    """
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise ConfigError(
            f"precision={precision} (fp16) needs a CUDA device, but this runs on {device}: "
            "use precision=bf16 (fast on recent CPUs) or precision=32"
        )
    return dtype


def make_predictor(
    net: nn.Module,
    scale: int,
    tile: int | str | None = None,
    tile_overlap: int = 32,
    ensemble: bool = False,
    dtype: torch.dtype | None = None,
    tile_batch: int = 1,
    memory_budget_gb: float | None = None,
) -> Predictor:
    """LR ``[B, C, h, w]`` -> SR ``[B, C, s*h, s*w]`` float32, unclamped, for images of any size.

    ``dtype`` (bf16/fp16) runs the network under autocast; every tile's output is cast back
    to float32 before it is stitched, so the full-size result never holds low-precision values
    (bf16 keeps 8 significant bits: too few for a 16-bit image). ``tile_batch``: tiles per
    forward pass (:func:`srlab.imaging.tiling.tiled_forward`); ``tile`` and
    ``memory_budget_gb`` as in :func:`with_tiling`.
    """

    def forward(lr: torch.Tensor) -> torch.Tensor:
        with torch.autocast(lr.device.type, dtype=dtype, enabled=dtype is not None):
            sr = super_resolve(net, lr)
        return sr.float()

    return with_tiling(forward, scale, tile, tile_overlap, ensemble, tile_batch, memory_budget_gb)


def with_tiling(
    forward: Predictor,
    scale: int,
    tile: int | str | None = None,
    tile_overlap: int = 32,
    ensemble: bool = False,
    tile_batch: int = 1,
    memory_budget_gb: float | None = None,
) -> Predictor:
    """``forward`` (LR -> SR of whole images) run tile by tile when ``tile`` is set
    (``tile_batch`` tiles per call), and as the x8 self-ensemble when ``ensemble`` is: the one
    composition of inference, evaluation and the test of a training run.

    ``tile="auto"`` measures the memory of ``forward`` once per batch shape (two passes on
    small probes, :class:`srlab.imaging.tiling.ForwardMemory`) and runs each image whole when
    its pass fits ``memory_budget_gb`` GiB (None: a share of the device's free memory), else
    in the largest tiles that fit: memory-safe, and no pixel computed twice that need not be.
    """
    memories: dict[tuple, ForwardMemory] = {}

    def auto_tiled(lr: torch.Tensor) -> torch.Tensor:
        key = (*lr.shape[:-2], lr.dtype, lr.device)
        if key not in memories:
            memories[key] = ForwardMemory.measure(forward, lr)
        budget = memory_budget(lr.device, memory_budget_gb)
        side = budget_tile(memories[key], *lr.shape[-2:], tile_overlap, budget)
        if side is None:
            return forward(lr)
        log.info(
            "tile=auto: %dx%d LR pixels need %.2f GiB, over the budget of %.2f GiB: tiles of %d",
            *lr.shape[-2:], memories[key].bytes(*lr.shape[-2:]) / 2**30, budget / 2**30, side,
        )  # fmt: skip
        return tiled_forward(forward, lr, scale, side, tile_overlap, tile_batch)

    def tiled(lr: torch.Tensor) -> torch.Tensor:
        return tiled_forward(forward, lr, scale, tile, tile_overlap, tile_batch)

    single = (auto_tiled if tile == AUTO else tiled) if tile else forward
    return (lambda lr: self_ensemble(single, lr)) if ensemble else single


@dataclass
class LoadedImage:
    """An image as inference sees it.

    Attributes:
        pixels: colour ``[C, H, W]`` float32 in ``[0, 1]``, C = 1 (grayscale) or 3 (RGB).
        alpha: opacity ``[1, H, W]`` float32 in ``[0, 1]``, or None.
        bits: 8 or 16, the bit depth the image came with (and is written with).
        icc_profile: the embedded ICC colour profile, copied to the output.
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None = None
    bits: int = 8
    icc_profile: bytes | None = None

    @classmethod
    def from_array(
        cls, array: np.ndarray, bits: int, icc_profile: bytes | None = None
    ) -> LoadedImage:
        """From an ``[H, W, C]`` uint8/uint16 array, C = 1 (L), 2 (LA), 3 (RGB), 4 (RGBA)."""
        scaled = torch.from_numpy(array.astype(np.float32) / (65535.0 if bits == 16 else 255.0))
        planes = scaled.permute(2, 0, 1)
        has_alpha = planes.shape[0] in (2, 4)
        colour = planes[:-1] if has_alpha else planes
        alpha = planes[-1:] if has_alpha else None
        return cls(
            colour.contiguous(), None if alpha is None else alpha.contiguous(), bits, icc_profile
        )

    def to_array(self, bits: int | None = None) -> np.ndarray:
        """An ``[H, W, C]`` uint8 (bits 8) or uint16 (bits 16) array, alpha last.

        ``bits`` defaults to the image's own. Quantizes one channel at a time: for an
        8160x5376 result a float copy of all channels would be another 0.5 GB.
        """
        bits = self.bits if bits is None else bits
        planes = [self.pixels[c] for c in range(self.pixels.shape[0])]
        if self.alpha is not None:
            planes.append(self.alpha[0])
        height, width = planes[0].shape
        levels = 65535.0 if bits == 16 else 255.0
        array = np.empty((height, width, len(planes)), np.uint16 if bits == 16 else np.uint8)
        for index, plane in enumerate(planes):
            array[..., index] = plane.clamp(0, 1).mul_(levels).round_().numpy()
        return array


def upscale_images(
    predict: Predictor, images: Sequence[LoadedImage], scale: int, device: torch.device
) -> list[LoadedImage]:
    """Super-resolve images of one size in one batch; returns them clamped to ``[0, 1]``.

    The colour goes through ``predict``; an alpha channel is upscaled by MATLAB bicubic on
    its own (a network trained on photos has no business inventing opacity).
    """
    with torch.no_grad():
        lr = torch.stack([image.pixels for image in images]).to(device)
        sr = predict(lr).clamp_(0, 1).cpu()
        del lr
        results = []
        for index, image in enumerate(images):
            alpha = None
            if image.alpha is not None:
                size = (image.alpha.shape[1] * scale, image.alpha.shape[2] * scale)
                alpha = imresize(image.alpha, size=size).clamp_(0, 1)
            results.append(LoadedImage(sr[index], alpha, image.bits, image.icc_profile))
    return results

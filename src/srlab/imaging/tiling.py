"""Whole-image inference helpers: tiled forward passes (tiles of a fixed side, or the largest
that fit a memory budget) and the x8 geometric self-ensemble."""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakIdKeyDictionary

from srlab.errors import ConfigError

Forward = Callable[[torch.Tensor], torch.Tensor]

#: ``inference.tile=auto``: the largest tile whose forward pass fits the memory budget, or
#: the whole image when it fits.
AUTO = "auto"
#: The share of the device's free memory a forward pass may use when no budget is given:
#: the tensors are measured exactly, but convolution workspaces and the allocator's
#: fragmentation are not, and the process needs the rest (the SR image itself, the next
#: image's decoding).
FREE_MEMORY_SHARE = {"cuda": 0.7, "cpu": 0.5}


@dataclass(frozen=True)
class Tile:
    """One tile of a tiled forward pass, in LR pixels.

    The network sees ``[top0:bottom1, left0:right1]`` (the tile with its context) and the
    output keeps ``[top:top + rows, left:left + cols]`` (the tile itself), times the scale.
    """

    top: int
    left: int
    rows: int
    cols: int
    top0: int
    left0: int
    bottom1: int
    right1: int

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of what the network sees."""
        return self.bottom1 - self.top0, self.right1 - self.left0


def tile_plan(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """The tiles of a ``height x width`` LR image, row by row: ``tile x tile`` (smaller at
    the right and bottom edges), each with ``overlap`` pixels of context on every side where
    the image has them."""
    if tile <= 0 or overlap < 0:
        raise ValueError(f"tile must be > 0 and tile_overlap >= 0, got {tile} and {overlap}")
    return [
        Tile(
            top,
            left,
            min(tile, height - top),
            min(tile, width - left),
            max(top - overlap, 0),
            max(left - overlap, 0),
            min(top + tile + overlap, height),
            min(left + tile + overlap, width),
        )
        for top in range(0, height, tile)
        for left in range(0, width, tile)
    ]


def tile_work(height: int, width: int, tile: int, overlap: int) -> float:
    """LR pixels a tiled pass computes over those of one whole pass (>= 1): the overlap of
    every tile is computed again by its neighbours (tile 128 with overlap 16 on a 512 x 512
    image: 1.41). Were every pixel as fast in a tile as in the whole image, tiling would run
    at ``1 / work`` of whole-image speed; on a CPU it need not: a tile's feature maps stay in
    the cache where a whole image's do not, and tiles there can beat the whole image."""
    plan = tile_plan(height, width, tile, overlap)
    return sum(t.shape[0] * t.shape[1] for t in plan) / (height * width)


def parse_tile(value: Any, key: str = "inference.tile") -> int | str | None:
    """A config's tile value as the code uses it: None (whole images; ``null`` or 0, as other
    SR tools read 0), :data:`AUTO`, or a side > 0 in LR pixels.

    Raises:
        ConfigError: anything else, naming ``key``.
    """
    if value is None or value == 0 or value == "0":
        return None
    if value == AUTO:
        return AUTO
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigError(
        f"{key}={value!r}: give a tile side > 0 in LR pixels, auto (the largest tile that fits "
        "inference.memory_budget_gb), or 0 / null (whole images)"
    )


class _TensorMemory(TorchDispatchMode):
    """Counts the bytes of the tensors created inside it, and their peak: each new storage
    is added when an op returns it and taken off when Python frees it. Exact for what is
    held between ops, on any device; blind to an op's internal workspace."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for leaf in pytree.tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                storage = leaf.untyped_storage()
                if storage not in self._seen:
                    nbytes = storage.nbytes()
                    self._seen[storage] = nbytes
                    self.live += nbytes
                    weakref.finalize(storage, self._free, nbytes)
        self.peak = max(self.peak, self.live)
        return out


@dataclass(frozen=True)
class ForwardMemory:
    """The peak bytes of the tensors one forward pass creates, as ``fixed + per_pixel * h * w``
    for an LR batch of ``h x w`` images (its batch and channels fixed)."""

    fixed: float
    per_pixel: float

    @classmethod
    def measure(cls, forward: Forward, like: torch.Tensor, sides: tuple[int, int] = (32, 64)):
        """Fitted from two forward passes on small LR batches shaped like ``like`` (its
        batch, channels, dtype and device) of ``sides`` pixels square; call under no_grad."""
        peaks = []
        for side in sides:
            probe = torch.rand(*like.shape[:-2], side, side, dtype=like.dtype, device=like.device)
            tracker = _TensorMemory()
            with tracker:
                forward(probe)
            peaks.append(tracker.peak)
        small, large = sides[0] ** 2, sides[1] ** 2
        per_pixel = max((peaks[1] - peaks[0]) / (large - small), 1.0)
        return cls(fixed=max(peaks[0] - per_pixel * small, 0.0), per_pixel=per_pixel)

    def bytes(self, height: int, width: int) -> float:
        """The peak bytes of one forward pass on ``height x width`` LR images."""
        return self.fixed + self.per_pixel * height * width


def free_memory(device: torch.device) -> int:
    """Bytes the device has free now: CUDA's own count, or the kernel's MemAvailable (free
    plus reclaimable cache) for the CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # not Linux: the page count below
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_budget(device: torch.device, budget_gb: float | None) -> float:
    """Bytes a forward pass may use: ``budget_gb`` GiB, or :data:`FREE_MEMORY_SHARE` of what
    the device has free."""
    if budget_gb is not None:
        return budget_gb * 2**30
    return free_memory(device) * FREE_MEMORY_SHARE.get(device.type, 0.5)


def budget_tile(memory: ForwardMemory, height: int, width: int, overlap: int, budget: float):
    """The tile side for an ``height x width`` LR image whose forward pass costs ``memory``:
    None when the whole image fits ``budget`` bytes; else the largest tile that fits with its
    ``overlap`` of context, evened out so the long side's tiles share its pixels (fewer pixels
    computed twice than a full grid plus a thin remainder).

    Raises:
        ConfigError: not even a one-pixel tile with its context fits.
    """
    if memory.bytes(height, width) <= budget:
        return None
    room = (budget - memory.fixed) / memory.per_pixel
    largest = math.isqrt(int(room)) - 2 * overlap if room > 0 else 0
    if largest < 1:
        need = memory.bytes(2 * overlap + 1, 2 * overlap + 1) / 2**30
        raise ConfigError(
            f"inference.tile=auto: a memory budget of {budget / 2**30:.2f} GiB holds no tile of "
            f"this network with {overlap} pixels of overlap (one LR pixel with its context needs "
            f"{need:.2f} GiB): raise inference.memory_budget_gb or lower inference.tile_overlap"
        )
    long_side = max(height, width)
    return math.ceil(long_side / math.ceil(long_side / largest))


def tiled_forward(
    forward: Forward, lr: torch.Tensor, scale: int, tile: int, overlap: int, batch: int = 1
) -> torch.Tensor:
    """``forward(lr)`` computed tile by tile, for images that do not fit in memory at once.

    The LR image is cut into ``tile x tile`` tiles (:func:`tile_plan`); each is run with
    ``overlap`` extra LR pixels of context on every side (fewer at the image border), and only
    its central part is kept. When ``overlap`` covers the network's receptive field, every
    output pixel sees exactly the context it would see untiled, so the result equals the
    untiled one up to floating-point rounding.

    ``batch`` tiles of one shape go through ``forward`` together (stacked along the batch
    dimension, after the images of ``lr``): fewer, larger calls, which GPUs run faster; the
    memory of one call grows with it. With ``batch=1`` every tile is its own call, and the
    result is bit-identical whatever the hardware; with more, convolution kernels may pick
    other algorithms for the larger batch, which changes the float rounding (by about 1e-7 on
    a CPU).

    Args:
        forward: maps LR ``[B, C, h, w]`` to SR ``[B, C', scale*h, scale*w]``.
        lr: the LR batch.
        scale: the upscaling factor of ``forward``.
        tile: tile side in LR pixels.
        overlap: LR pixels of context around each tile.
        batch: tiles per call of ``forward`` (>= 1).

    Example:
        >>> conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        >>> x = torch.rand(1, 1, 20, 30)
        >>> with torch.no_grad():
        ...     same = torch.allclose(tiled_forward(conv, x, 1, 8, 2), conv(x), atol=1e-6)
        >>> same
        True
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1 tile per forward, got {batch}")
    images = lr.shape[0]
    output = None
    for group in _calls(tile_plan(*lr.shape[-2:], tile, overlap), batch):
        crops = [lr[..., t.top0 : t.bottom1, t.left0 : t.right1] for t in group]
        sr = forward(crops[0] if len(crops) == 1 else torch.cat(crops))
        if output is None:
            height, width = lr.shape[-2:]
            # Every pixel is written by exactly one tile: no need to zero it first.
            output = sr.new_empty(images, *sr.shape[1:-2], height * scale, width * scale)
        for index, t in enumerate(group):
            rows, cols = (
                slice(t.top * scale, (t.top + t.rows) * scale),
                slice(t.left * scale, (t.left + t.cols) * scale),
            )
            kept = sr[index * images : (index + 1) * images]
            row0, col0 = (t.top - t.top0) * scale, (t.left - t.left0) * scale
            output[..., rows, cols] = kept[
                ..., row0 : row0 + t.rows * scale, col0 : col0 + t.cols * scale
            ]
    return output


def _calls(plan: list[Tile], batch: int) -> Iterator[list[Tile]]:
    """The tiles of ``plan`` in groups of at most ``batch`` that share a shape (the grid's
    interior, its edges, its corner), in the plan's order within each shape."""
    if batch == 1:
        yield from ([t] for t in plan)
        return
    for _, same in groupby(sorted(plan, key=lambda t: t.shape), key=lambda t: t.shape):
        tiles = list(same)
        for start in range(0, len(tiles), batch):
            yield tiles[start : start + batch]


def self_ensemble(forward: Forward, lr: torch.Tensor) -> torch.Tensor:
    """The x8 geometric self-ensemble of EDSR's "+" results (Lim et al. 2017, section 4.3).

    ``forward`` runs on the 8 flips and transpositions of ``lr``; each output is transformed
    back, and the 8 are averaged.
    """
    outputs = []
    for transpose in (False, True):
        for hflip in (False, True):
            for vflip in (False, True):
                x = dihedral(lr, transpose, hflip, vflip)
                y = forward(x)
                outputs.append(_dihedral_inverse(y, transpose, hflip, vflip))
    return torch.stack(outputs).mean(dim=0)


def dihedral(x: torch.Tensor, transpose: bool, hflip: bool, vflip: bool) -> torch.Tensor:
    """One of the 8 flips/transpositions of ``x`` [..., H, W] (transpose, then flips)."""
    if transpose:
        x = x.transpose(-1, -2)
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    return x


def _dihedral_inverse(x: torch.Tensor, transpose: bool, hflip: bool, vflip: bool) -> torch.Tensor:
    if vflip:
        x = x.flip(-2)
    if hflip:
        x = x.flip(-1)
    if transpose:
        x = x.transpose(-1, -2)
    return x

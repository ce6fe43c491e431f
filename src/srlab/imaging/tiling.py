"""Whole-image inference helpers: tiled forward passes and the x8 geometric self-ensemble."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


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
    every tile is computed again by its neighbours, so tiling can run at most ``1 / work``
    of whole-image speed, whatever the implementation (tile 128 with overlap 16 on a 512 x 512
    image: 1.41, at most 0.71 of the speed)."""
    plan = tile_plan(height, width, tile, overlap)
    return sum(t.shape[0] * t.shape[1] for t in plan) / (height * width)


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

"""Whole-image inference helpers: tiled forward passes and the x8 geometric self-ensemble."""

from __future__ import annotations

from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


def tiled_forward(
    forward: Forward, lr: torch.Tensor, scale: int, tile: int, overlap: int
) -> torch.Tensor:
    """``forward(lr)`` computed tile by tile, for images that do not fit in memory at once.

    The LR image is cut into ``tile x tile`` tiles; each is run with ``overlap`` extra LR
    pixels of context on every side (fewer at the image border), and only its central part
    is kept. When ``overlap`` covers the network's receptive field, every output pixel sees
    exactly the context it would see untiled, so the result equals the untiled one up to
    floating-point rounding.

    Args:
        forward: maps LR ``[B, C, h, w]`` to SR ``[B, C', scale*h, scale*w]``.
        lr: the LR batch.
        scale: the upscaling factor of ``forward``.
        tile: tile side in LR pixels.
        overlap: LR pixels of context around each tile.

    Example:
        >>> conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        >>> x = torch.rand(1, 1, 20, 30)
        >>> with torch.no_grad():
        ...     same = torch.allclose(tiled_forward(conv, x, 1, 8, 2), conv(x), atol=1e-6)
        >>> same
        True
    """
    if tile <= 0 or overlap < 0:
        raise ValueError(f"tile must be > 0 and tile_overlap >= 0, got {tile} and {overlap}")
    height, width = lr.shape[-2:]
    output = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            top0, left0 = max(top - overlap, 0), max(left - overlap, 0)
            bottom1 = min(top + tile + overlap, height)
            right1 = min(left + tile + overlap, width)
            sr = forward(lr[..., top0:bottom1, left0:right1])
            if output is None:
                output = sr.new_zeros(*sr.shape[:-2], height * scale, width * scale)
            rows = min(tile, height - top) * scale
            cols = min(tile, width - left) * scale
            row0, col0 = (top - top0) * scale, (left - left0) * scale
            output[..., top * scale : top * scale + rows, left * scale : left * scale + cols] = sr[
                ..., row0 : row0 + rows, col0 : col0 + cols
            ]
    return output


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

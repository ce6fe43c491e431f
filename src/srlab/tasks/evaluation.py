"""How a task scores its evaluation sets: the protocol, the test input, the forward pass.

One set of options for training's validation and test and for ``src/eval.py``, which runs a
Lightning test of the same task (:mod:`srlab.app.evaluate`): both score through
:meth:`srlab.tasks.SRTask.evaluate_batch`, so their numbers are the same by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from srlab.errors import ConfigError
from srlab.imaging import imresize
from srlab.imaging.io import write_image
from srlab.imaging.predict import with_tiling
from srlab.imaging.tiling import parse_tile
from srlab.metrics import quantize, to_y255

#: Where the network's LR input comes from (``eval.lr_from``): ``rgb``, the set's 8-bit RGB LR
#: (files or MATLAB bicubic of the RGB HR); ``y``, the Y channel of HR downscaled in floating
#: point, as the SRCNN and VDSR test code make it.
LR_FROM = ("rgb", "y")
CHANNELS = ("y", "rgb")


@dataclass(frozen=True)
class EvalOptions:
    """The evaluation protocol and forward pass; the defaults are the SR literature's.

    Args:
        channel: ``y`` (MATLAB's Y of 8-bit levels) or ``rgb``.
        shave: border pixels removed on every side before scoring; None means the scale.
        round_y: round Y to 8-bit levels first (MATLAB ``rgb2ycbcr`` on uint8; older papers).
        lr_from: the network's input, one of :data:`LR_FROM`.
        tile: LR tile side for images that do not fit in memory; ``auto``: the largest that
            fits ``memory_budget_gb`` (whole when the image fits); None: whole images.
        tile_overlap: LR pixels of context around each tile (exact when it covers the
            network's receptive field).
        self_ensemble: EDSR's x8 geometric ensemble ("+" in the papers).
        memory_budget_gb: GiB a forward pass may use with ``tile="auto"`` (None: a share of
            the device's free memory).
        save_dir: write each test image's SR as ``<save_dir>/<Set>/<name>.png``.
    """

    channel: str = "y"
    shave: int | None = None
    round_y: bool = False
    lr_from: str = "rgb"
    tile: int | str | None = None
    tile_overlap: int = 32
    self_ensemble: bool = False
    memory_budget_gb: float | None = None
    save_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ConfigError(f"eval.channel={self.channel!r}: use one of {CHANNELS}")
        if self.lr_from not in LR_FROM:
            raise ConfigError(f"eval.lr_from={self.lr_from!r}: use one of {LR_FROM}")
        if self.lr_from == "y" and self.channel != "y":
            raise ConfigError(
                f"eval.lr_from=y super-resolves and scores the Y channel alone, so "
                f"eval.channel={self.channel!r} cannot be scored: use eval.lr_from=rgb for it"
            )
        object.__setattr__(self, "tile", parse_tile(self.tile))

    @property
    def protocol(self) -> str:
        """A short name of the protocol, recorded in results.json: ``y-shave-scale``."""
        shave = "scale" if self.shave is None else str(self.shave)
        return f"{self.channel}{'8' if self.round_y else ''}-shave-{shave}"

    def predictor(
        self, forward: Callable[[torch.Tensor], torch.Tensor], scale: int
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """``forward`` (LR -> SR) with this evaluation's tiling and self-ensemble."""
        return with_tiling(
            forward,
            scale,
            self.tile,
            self.tile_overlap,
            self.self_ensemble,
            memory_budget_gb=self.memory_budget_gb,
        )


def y_channel_pair(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HR and LR of one image as the SRCNN and VDSR test code make them (``eval.lr_from=y``).

    HR becomes its Y channel as MATLAB's ``rgb2ycbcr`` gives it for a uint8 image (rounded to
    8 bits; a grayscale image is its own Y), and LR is ``imresize(Y, 1/scale)`` kept in floating
    point, not saved to 8 bits. The published bicubic, SRCNN and VDSR tables were computed on
    this pair: it reproduces their bicubic Set5 rows to every printed digit, where the RGB LR
    files land 0.01-0.02 dB higher (``tests/test_published_weights.py``).

    Args:
        hr: the 8-bit HR image ``[1, C, H, W]`` in [0, 1], mod-cropped to ``scale``; C 1 or 3.
        scale: the SR scale.

    Returns:
        ``(y_hr, y_lr)``: ``[1, 1, H, W]`` and ``[1, 1, H / scale, W / scale]``, dtype of ``hr``.
    """
    y_hr = to_y255(hr, round_y=True).to(hr.dtype) / 255
    return y_hr, imresize(y_hr, scale=1 / scale)


def save_image(image: torch.Tensor, path: Path) -> None:
    """Save a [1, C, H, W] image in [0, 1] as an 8-bit PNG (1 channel stays grayscale)."""
    write_image(path, quantize(image[0]).to(torch.uint8).permute(1, 2, 0).cpu().numpy())

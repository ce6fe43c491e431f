"""Per-image results as W&B tables: which images a run improved, and by how much.

An SR task adds one row per evaluated image (:meth:`ImageResults.add`) and, at the end of a
test or of training, logs one table per evaluation set (:meth:`ImageResults.log`) under
``<stage>/<Set>/per_image``, with the columns :data:`COLUMNS`: the image's name, its PSNR and
SSIM, the PSNR of the MATLAB-bicubic upscale, the gain over it (dB) and a centre crop of the
SR image. W&B sorts and filters such a table in the browser, and sets tables of two runs side
by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from lightning.pytorch.loggers import Logger, WandbLogger

from srlab.metrics import quantize

COLUMNS = ["image", "psnr", "ssim", "psnr_bicubic", "gain_db", "sr"]
TABLE_KEY = "{stage}/{set_name}/per_image"
CROP_SIDE = 256  # HR pixels of the SR crop in each row: enough to judge, small to upload


def wants_tables(loggers: Iterable[Logger]) -> bool:
    """Whether any of ``loggers`` shows tables (W&B); the same answer on every DDP rank."""
    return any(isinstance(logger, WandbLogger) for logger in loggers)


@dataclass
class ImageRow:
    """One evaluated image: its scores, the bicubic baseline's PSNR, and an SR crop."""

    name: str
    psnr: float
    ssim: float
    psnr_bicubic: float | None
    crop: np.ndarray  # uint8 [H, W, 3]

    def cells(self) -> list:
        """The row's table cells (the crop as a fresh ``wandb.Image``: W&B logs one once)."""
        import wandb

        gain = None if self.psnr_bicubic is None else self.psnr - self.psnr_bicubic
        return [self.name, self.psnr, self.ssim, self.psnr_bicubic, gain, wandb.Image(self.crop)]


class ImageResults:
    """The per-image rows of the latest evaluation of each stage (``val``, ``test``).

    The bicubic baseline is scored at the first validation only (it does not change), so its
    per-image PSNR is remembered by set and image and filled into later validations' rows.
    """

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[ImageRow]]] = {"val": {}, "test": {}}
        self._bicubic: dict[tuple[str, str], float] = {}

    def start(self, stage: str) -> None:
        """Forget the rows of ``stage``'s previous evaluation."""
        self.rows[stage] = {}

    def add(
        self,
        stage: str,
        set_name: str,
        name: str,
        psnr: float,
        ssim: float,
        sr: torch.Tensor,
        psnr_bicubic: float | None = None,
    ) -> None:
        """Add the row of image ``name`` of ``set_name`` (``sr``: [1, C, H, W] in [0, 1])."""
        if psnr_bicubic is None:
            psnr_bicubic = self._bicubic.get((set_name, name))
        else:
            self._bicubic[(set_name, name)] = psnr_bicubic
        row = ImageRow(name, float(psnr), float(ssim), psnr_bicubic, centre_crop(sr, CROP_SIDE))
        self.rows[stage].setdefault(set_name, []).append(row)

    def gather(self, stage: str, world_size: int) -> None:
        """Collect every DDP rank's rows of ``stage`` (each rank scored part of each set);
        every rank must call it."""
        if world_size <= 1:
            return
        parts: list = [None] * world_size
        torch.distributed.all_gather_object(parts, self.rows[stage])
        merged: dict[str, list[ImageRow]] = {}
        for part in parts:
            for set_name, rows in part.items():
                merged.setdefault(set_name, []).extend(rows)
        self.rows[stage] = merged

    def log(self, loggers: Iterable[Logger], stage: str, step: int) -> None:
        """Log one table per set of ``stage``'s rows (sorted by image name) to W&B."""
        for logger in loggers:
            if not isinstance(logger, WandbLogger):
                continue
            for set_name, rows in self.rows[stage].items():
                logger.log_table(
                    key=TABLE_KEY.format(stage=stage, set_name=set_name),
                    columns=COLUMNS,
                    data=[row.cells() for row in sorted(rows, key=lambda r: r.name)],
                    step=step,
                )


def centre_crop(image: torch.Tensor, side: int) -> np.ndarray:
    """The centre ``side`` x ``side`` pixels (or fewer) of ``image`` [1, C, H, W] in [0, 1] as
    uint8 [h, w, 3] (a grayscale image repeated on three channels)."""
    height, width = image.shape[-2:]
    top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
    crop = quantize(image[0, :, top : top + side, left : left + side].float())
    return crop.to(torch.uint8).expand(3, -1, -1).permute(1, 2, 0).cpu().numpy().copy()

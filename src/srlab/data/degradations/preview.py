"""What a degraded batch looked like: LR beside HR as one picture, and its parameters as rows.

Training keeps the first degraded batch after each validation (:class:`DegradationPreview`);
the task logs it at the next validation (a W&B image and a PNG, a W&B table and a CSV file),
and ``python -m srlab.data.degrade`` writes the same kind of grid for one image.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger, WandbLogger

from srlab.data.degradations.config import KERNEL_TYPES, RESIZE_MODES
from srlab.data.degradations.params import PARAM_NAMES

#: Samples of a batch kept for the preview.
MAX_PREVIEW = 4


def readable(name: str, value: float | int) -> str | float | int:
    """A parameter's table cell: kernel and mode names instead of their indices."""
    if name.endswith("_kernel"):
        return KERNEL_TYPES[int(value)]
    if name.endswith("_resize_mode"):
        return RESIZE_MODES[int(value)]
    if name.endswith(("_ksize", "_seed")):
        return int(value)
    return round(float(value), 4)


def side_by_side(lr: torch.Tensor, hr: torch.Tensor) -> np.ndarray:
    """uint8 [n H, 2 W, 3]: each LR [n, 3, h, w] (nearest-upscaled to HR size) beside its HR."""
    lr_big = F.interpolate(lr.float(), size=hr.shape[-2:], mode="nearest")
    rows = torch.cat([lr_big, hr.float()], dim=-1)  # [n, 3, H, 2W]
    picture = torch.cat(list(rows), dim=-2)  # [3, n H, 2 W]
    return (picture.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@dataclass
class DegradationPreview:
    """The first samples of one degraded training batch.

    Attributes:
        lr: the degraded LR [n, 3, h, w] (CPU).
        hr: the HR patches they were made from [n, 3, H, W] (before sharpening).
        params: ``{name: [n] tensor}``, the drawn parameters.
        names: the images the patches were cut from.
        step: the global step of the batch.
    """

    lr: torch.Tensor
    hr: torch.Tensor
    params: dict[str, torch.Tensor]
    names: list[str]
    step: int

    @classmethod
    def of_batch(
        cls,
        lr: torch.Tensor,
        hr: torch.Tensor,
        params: dict,
        names: list[str],
        step: int,
        limit: int | None = MAX_PREVIEW,
    ) -> DegradationPreview:
        """Keep the first ``limit`` samples of a batch (None: all), copied to the CPU."""
        n = lr.shape[0] if limit is None else min(limit, lr.shape[0])
        return cls(
            lr=lr[:n].detach().float().cpu(),
            hr=hr[:n].detach().float().cpu(),
            params={k: v[:n].detach().cpu() for k, v in params.items()},
            names=list(names)[:n],
            step=int(step),
        )

    def picture(self) -> np.ndarray:
        """LR | HR, one row per sample (:func:`side_by_side`)."""
        return side_by_side(self.lr, self.hr)

    @property
    def caption(self) -> str:
        """The picture's caption."""
        return f"degraded LR | HR, training batch of step {self.step}"

    @property
    def columns(self) -> list[str]:
        """Table columns: the sample, its image, then every parameter."""
        return ["sample", "image", *PARAM_NAMES]

    def rows(self) -> list[list]:
        """One table row per sample."""
        return [
            [index, self.names[index]]
            + [readable(name, self.params[name][index].item()) for name in PARAM_NAMES]
            for index in range(self.lr.shape[0])
        ]

    def write_csv(self, path: Path) -> None:
        """Write the table to ``path`` (a CSV file; folders made)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(self.columns)
            writer.writerows(self.rows())

    def log_table(self, loggers: Iterable[Logger], key: str, step: int) -> None:
        """Log the table to every W&B logger under ``key``."""
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(key=key, columns=self.columns, data=self.rows(), step=step)

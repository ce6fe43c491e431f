"""Sending pictures to whichever loggers a run has (W&B, TensorBoard); others are skipped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger


def log_images(
    loggers: Iterable[Logger],
    key: str,
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    step: int,
) -> None:
    """Log uint8 [H, W, 3] images under ``key`` to every logger that can show images."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            # log_image builds fresh wandb.Image objects per call: W&B refuses to log one twice.
            logger.log_image(key=key, images=list(images), caption=list(captions), step=step)
        elif isinstance(logger, TensorBoardLogger):
            for index, image in enumerate(images):
                tag = key if len(images) == 1 else f"{key}/{index}"
                logger.experiment.add_image(tag, image, step, dataformats="HWC")

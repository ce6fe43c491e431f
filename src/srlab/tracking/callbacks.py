"""Lightning callbacks of the tracking layer."""

from __future__ import annotations

from typing import Any

import lightning as L

from srlab.tracking.wandb import RUN_ID_KEY


class RunIdCallback(L.Callback):
    """Stores the W&B run id in every checkpoint, so that ``ckpt_path=`` continues that run.

    Args:
        run_id: the id of this run's W&B run.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Add the run id to the checkpoint dict."""
        checkpoint[RUN_ID_KEY] = self.run_id

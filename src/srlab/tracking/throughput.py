"""Training speed: Lightning's ``ThroughputMonitor`` for training, what it needs to know about
an SR batch, and whether a precision is fast on this machine.

The callback (``callbacks.throughput`` in ``conf/callbacks/default.yaml``) logs
``train/device/samples_per_sec`` (patches per second) and ``train/device/flops_per_sec``
(the SR network's forward FLOPs per second: twice its multiply-accumulates, from the task's
``flops_per_batch``, see :class:`srlab.tasks.SRTask`), averaged over its last ``window_size``
steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.utilities import rank_zero_only

__all__ = [
    "TrainingThroughputMonitor",
    "cpu_has_fast_bf16",
    "patches_in_batch",
    "slow_precision_warning",
]


class TrainingThroughputMonitor(ThroughputMonitor):
    """Lightning's ``ThroughputMonitor``, logging training throughput only.

    Lightning's callback also logs validation and test throughput, at the *validation batch
    index* as the step: W&B's ``trainer/global_step`` axis would then jump back to 1, 2, ...
    at every validation. Here validation batches are still counted, so that the parent's
    ``on_validation_end`` takes the validation time out of the training windows, but
    nothing is logged for them, nor for test or predict batches.

    Args:
        batch_size_fn: samples in a batch (:func:`patches_in_batch`).
        **kwargs: ``window_size`` (steps averaged over) and ``separator`` of Lightning's
            ``Throughput``.
    """

    @rank_zero_only
    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        """Count the batch's time for ``on_validation_end``; log nothing."""
        if trainer.sanity_checking:
            return
        self._update(trainer, pl_module, batch, trainer._evaluation_loop.batch_progress.total.ready)

    def on_test_batch_end(self, *_: Any, **__: Any) -> None:
        """Log nothing for test batches."""

    def on_predict_batch_end(self, *_: Any, **__: Any) -> None:
        """Log nothing for predict batches."""


def patches_in_batch(batch: Mapping[str, torch.Tensor]) -> int:
    """The number of patches (or whole images) in an SR batch: ``batch["lr"].shape[0]``.

    Example:
        >>> patches_in_batch({"lr": torch.zeros(16, 3, 48, 48), "hr": torch.zeros(16, 3, 96, 96)})
        16
    """
    return int(batch["lr"].shape[0])


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX-512 and newer: AVX-512 BF16, AMX).

    Without them (AVX2 CPUs) PyTorch runs bf16 convolutions and their gradients through
    reference kernels.
    """
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def slow_precision_warning(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` (a ``trainer.precision`` value) is slow on ``device``, or None.

    bf16 autocast on a CPU without fast bf16 kernels (:func:`cpu_has_fast_bf16`) trains
    correctly but far slower than fp32: an EDSR-baseline x2 step (batch 16, LR patch 48) ran
    at 0.3 patches/s in ``bf16-mixed`` (0.4 with channels-last) and 5.0 in ``32-true`` on a
    2-core AVX2 CPU (``benchmarks/throughput.py``).
    """
    if device.type != "cpu" or "bf16" not in str(precision) or cpu_has_fast_bf16():
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"trainer.precision={precision} runs bf16 autocast on a CPU without fast bfloat16 "
        f"kernels ({capability}; oneDNN needs AVX-512 or AMX): convolutions fall back to "
        "reference code, over 10x slower than trainer.precision=32-true (EDSR-baseline x2: "
        "0.3 vs 5.0 patches/s on a 2-core AVX2 CPU). Train in 32-true on this machine."
    )

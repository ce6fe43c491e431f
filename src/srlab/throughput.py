"""What Lightning's ``ThroughputMonitor`` needs to know about an SR batch.

The callback (``callbacks.throughput`` in ``conf/callbacks/default.yaml``) logs
``train/device/samples_per_sec`` (patches per second) and ``train/device/flops_per_sec``
(the SR network's forward FLOPs per second: twice its multiply-accumulates, from the task's
``flops_per_batch``, see :class:`srlab.tasks.SRTask`), averaged over its last ``window_size``
steps.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["patches_in_batch"]


def patches_in_batch(batch: Mapping[str, torch.Tensor]) -> int:
    """The number of patches (or whole images) in an SR batch: ``batch["lr"].shape[0]``.

    Example:
        >>> patches_in_batch({"lr": torch.zeros(16, 3, 48, 48), "hr": torch.zeros(16, 3, 96, 96)})
        16
    """
    return int(batch["lr"].shape[0])

"""Optimizers of the tasks: one builder, with parameter groups from the networks' own per-layer
learning-rate multipliers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def parameter_groups(net: nn.Module, base_lr: float | None) -> list[dict]:
    """Trainable parameters of ``net`` grouped by learning-rate multiplier.

    A network (or any submodule) asks for a different learning rate for some of its layers by
    defining ``lr_multipliers() -> {parameter-name prefix: multiplier}`` (SRCNN trains its last
    layer 10x slower, FSRCNN its deconvolution). Each group gets ``lr = base_lr * multiplier``
    and keeps ``lr_mult`` for reference; schedulers then scale every group alike.

    Raises:
        ValueError: a multiplier names no parameter, or ``base_lr`` is unknown while a
            multiplier is set.
    """
    multipliers: dict[str, float] = {}
    for module_name, module in net.named_modules():
        if hasattr(module, "lr_multipliers"):
            for prefix, mult in module.lr_multipliers().items():
                multipliers[f"{module_name}.{prefix}" if module_name else prefix] = float(mult)
    groups: dict[float, list[nn.Parameter]] = {}
    used = set()
    for name, param in net.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in multipliers if name == p or name.startswith(p + ".")), None)
        used.add(prefix)
        groups.setdefault(multipliers.get(prefix, 1.0), []).append(param)
    unused = sorted(set(multipliers) - used)
    if unused:
        raise ValueError(f"lr_multipliers name no parameter of {type(net).__name__}: {unused}")
    if set(groups) != {1.0} and base_lr is None:
        raise ValueError("per-layer lr multipliers need model.optimizer.lr to be set")
    return [
        {"params": params, "lr_mult": mult, **({} if base_lr is None else {"lr": base_lr * mult})}
        for mult, params in groups.items()
    ]


def build_optimizer(
    module: nn.Module,
    make_optimizer: Callable[..., torch.optim.Optimizer],
    make_scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None,
    **scheduler_config: Any,
) -> tuple[torch.optim.Optimizer, dict | None]:
    """The optimizer of ``module`` (per-layer lr groups, :func:`parameter_groups`) and its
    Lightning scheduler config (``{"scheduler": ..., **scheduler_config}``), or None.

    Args:
        module: the network the optimizer updates.
        make_optimizer: ``model.optimizer`` (``_partial_``), called with ``params=``.
        make_scheduler: ``model.scheduler`` (``_partial_``), called with ``optimizer=``; None
            for a constant rate.
        scheduler_config: Lightning's keys for the scheduler (``interval``, ``name``).
    """
    base_lr = getattr(make_optimizer, "keywords", {}).get("lr")
    optimizer = make_optimizer(params=parameter_groups(module, base_lr))
    if make_scheduler is None:
        return optimizer, None
    return optimizer, {"scheduler": make_scheduler(optimizer=optimizer), **scheduler_config}

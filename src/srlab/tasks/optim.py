"""Optimizer parameter groups from the networks' own per-layer learning-rate multipliers."""

from __future__ import annotations

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

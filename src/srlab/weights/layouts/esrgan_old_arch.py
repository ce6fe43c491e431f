"""The first ESRGAN release's names (xinntao/ESRGAN "old arch") for srlab's RRDBNet."""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from srlab.weights.registry import KeyLayout, StateDict, register_layout, rename_by_rules


def _convert_esrgan_old_arch(state: Mapping[str, torch.Tensor]) -> StateDict:
    """The first ESRGAN release ("old arch", one ``nn.Sequential`` named ``model``).

    ``model.0`` is conv_first; ``model.1.sub.{i}.RDB{k}.conv{j}.0`` the dense-block convs (each
    wrapped in a conv block); ``model.1.sub.{n}`` the trunk conv; then the upsampler as a flat
    sequence of (upsample, conv, LeakyReLU) stages, HRconv, LeakyReLU, conv_last, e.g. convs at
    3, 6, 8, 10 at x4 (xinntao/ESRGAN's ``transer_RRDB_models.py``). The top-level convs after
    index 1 are therefore, in order: conv_up1, conv_up2 (x4), conv_hr, conv_last.
    """
    body_rule = rename_by_rules(
        [
            (
                r"model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.(weight|bias)",
                r"body.\1.rdb\2.conv\3.\4",
            ),
            (r"model\.1\.sub\.\d+\.(weight|bias)", r"conv_body.\1"),
            (r"model\.0\.(weight|bias)", r"conv_first.\1"),
        ]
    )
    top = re.compile(r"model\.(\d+)\.(weight|bias)")
    tail_indices = sorted(
        {int(m.group(1)) for key in state if (m := top.fullmatch(key)) and int(m.group(1)) > 1}
    )
    n_up = len(tail_indices) - 2
    tail_names = [f"conv_up{i + 1}" for i in range(n_up)] + ["conv_hr", "conv_last"]
    # Fewer than two tail convs is no RRDBNet tail: leave those keys to show up as unexpected.
    tail_map = dict(zip(tail_indices, tail_names, strict=True)) if n_up >= 0 else {}
    out: StateDict = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = top.fullmatch(key)
        if match and int(match.group(1)) in tail_map:
            out[f"{tail_map[int(match.group(1))]}.{match.group(2)}"] = value
        else:
            rest[key] = value
    out.update(body_rule(rest))
    return out


register_layout(
    KeyLayout(
        name="esrgan_old_arch",
        description="first ESRGAN release, old arch (model.0, model.1.sub.*.RDB1...)",
        detect=lambda keys: any(k.startswith("model.1.sub.") for k in keys),
        convert=_convert_esrgan_old_arch,
    )
)

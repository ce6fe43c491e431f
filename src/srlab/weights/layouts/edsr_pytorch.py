"""EDSR-PyTorch's names (sanghyun-son/EDSR-PyTorch, the EDSR authors' code) for srlab's EDSR.

Their networks run on ``[0, 255]`` inputs, so the srlab EDSR needs ``img_range: 255``; a
warning says so after loading otherwise.
"""

from __future__ import annotations

from torch import nn

from srlab.weights.registry import KeyLayout, register_layout, rename_by_rules

# EDSR-PyTorch (sanghyun-son/EDSR-PyTorch, the EDSR authors' code), its EDSR network:
# head.0 -> conv_first; body.{i}.body.{0,2} -> body.{i}.conv{1,2}; body.{n} (the conv after the
# n blocks) -> conv_after_body; tail.0.{k} (Upsampler: conv at even k, PixelShuffle at odd k) ->
# upsample.{k}, the same indices as srlab's Upsample; tail.1 -> conv_last. Their MeanShift is a
# frozen 1x1 conv with saved weights; srlab's is a constant, so those entries are dropped.
_EDSR_PYTORCH_RULES: list[tuple[str, str | None]] = [
    (r"(sub_mean|add_mean)\..*", None),
    (r"head\.0\.(weight|bias)", r"conv_first.\1"),
    (r"body\.(\d+)\.body\.0\.(weight|bias)", r"body.\1.conv1.\2"),
    (r"body\.(\d+)\.body\.2\.(weight|bias)", r"body.\1.conv2.\2"),
    (r"body\.\d+\.(weight|bias)", r"conv_after_body.\1"),
    (r"tail\.0\.(\d+)\.(weight|bias)", r"upsample.\1.\2"),
    (r"tail\.1\.(weight|bias)", r"conv_last.\1"),
]


def _check_edsr_pytorch_range(net: nn.Module) -> str | None:
    # EDSR-PyTorch runs its network on [0, 255] values (rgb_range 255), so the weights only give
    # sensible output when srlab's EDSR scales its [0, 1] input the same way.
    img_range = getattr(net, "img_range", None)
    if img_range is not None and float(img_range) != 255.0:
        return (
            f"EDSR-PyTorch weights were trained on [0, 255] inputs but this network has "
            f"img_range={img_range}; set img_range: 255 in the model config "
            "(model.net.img_range=255) or its output will be wrong"
        )
    return None


register_layout(
    KeyLayout(
        name="edsr_pytorch",
        description="EDSR-PyTorch (sanghyun-son/EDSR-PyTorch) EDSR; needs img_range: 255",
        # body.0.body.0 is a conv in EDSR but a whole block in RCAN (same repository), so the
        # two stay apart when RCAN registers its own layout.
        detect=lambda keys: (
            {"head.0.weight", "body.0.body.0.weight"} <= set(keys)
            and any(k.startswith("tail.") for k in keys)
        ),
        convert=rename_by_rules(_EDSR_PYTORCH_RULES),
        check=_check_edsr_pytorch_range,
    )
)

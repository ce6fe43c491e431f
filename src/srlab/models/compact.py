"""SRVGGNetCompact (Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with
Pure Synthetic Data", ICCVW 2021: the compact models realesr-general-x4v3 and
realesr-animevideov3)."""

from __future__ import annotations

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_Compact = spandrel_class("Compact", "Compact")


class SRVGGNetCompact(CommunityNetwork, _Compact):
    """A VGG-style stack of 3x3 convolutions at LR resolution with a pixel-shuffle tail and a
    nearest-upsampled input added back.

    The official code (Real-ESRGAN's ``srvgg_arch.py``), through spandrel.

    Args:
        num_in_ch / num_out_ch: input and output channels.
        num_feat: feature channels (64).
        num_conv: body convolutions (32 in realesr-general-x4v3, 16 in realesr-animevideov3).
        upscale: SR scale (any).
        act_type: ``prelu`` (the releases), ``relu`` or ``leakyrelu``.
    """

    precision = Precision(fp16=True, bf16=True, why="convolutions only; spandrel allows both")

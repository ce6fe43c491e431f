"""Omni-SR (Wang et al., "Omni Aggregation Networks for Lightweight Image Super-Resolution",
CVPR 2023)."""

from __future__ import annotations

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_OmniSR = spandrel_class("OmniSR", "OmniSR")


class OmniSR(CommunityNetwork, _OmniSR):
    """Omni-SR: omni self-attention (spatial and channel) in residual omni-scale groups.

    The official code, through spandrel, whose arguments are named as the official code's:
    ``up_scale`` is the paper's ``upsampling`` (``upscale`` here is a read-only alias).

    Args:
        num_in_ch / num_out_ch: input and output channels.
        num_feat: feature channels (64).
        res_num: residual groups (5); block_num: blocks per group (1).
        window_size: attention window (8); inputs are padded to a multiple inside.
        pe: positional encoding in the attention.
        up_scale: SR scale (any: a pixel-shuffle tail).
        bias: convolution biases.
    """

    precision = Precision(
        fp16=True, bf16=True, why="agrees with fp32 on random weights; spandrel allows both"
    )

    @property
    def upscale(self) -> int:
        """SR scale (the official ``up_scale``)."""
        return int(self.hyperparameters["up_scale"])

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["num_in_ch"])

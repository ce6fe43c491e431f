"""DAT (Chen et al., "Dual Aggregation Transformer for Image Super-Resolution", ICCV 2023)."""

from __future__ import annotations

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_DAT = spandrel_class("DAT", "DAT")


class DAT(CommunityNetwork, _DAT):
    """Dual Aggregation Transformer: blocks alternate rectangle-window spatial attention and
    channel attention, each with a convolutional branch that feeds the other dimension.

    The official code, through spandrel (official argument and parameter names). Its channel
    interaction holds a BatchNorm: training needs batches of 2 or more.

    Args:
        upscale: SR scale (``pixelshuffle``: 2, 3, 4; ``pixelshuffledirect``: any).
        in_chans: input (and output) channels.
        img_size: training patch side.
        split_size: the rectangle windows' sides ``[short, long]``.
        embed_dim: feature channels; depth / num_heads: blocks and heads per residual group.
        expansion_factor: hidden width of each feed-forward, in multiples of ``embed_dim``.
        resi_connection: ``1conv`` or ``3conv`` after each group.
        upsampler: ``pixelshuffle`` or ``pixelshuffledirect`` (DAT-light).
        img_range: the range the network computes in (1: inputs in [0, 1]).

    Paper configurations: ``conf/model/dat.yaml``, ``dat_light.yaml``.
    """

    precision = Precision(fp16=False, bf16=True, why="spandrel marks it unsafe in fp16")

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["in_chans"])

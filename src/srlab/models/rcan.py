"""RCAN (Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention
Networks", ECCV 2018)."""

from __future__ import annotations

import torch

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_RCAN = spandrel_class("RCAN", "RCAN")


class RCAN(CommunityNetwork, _RCAN):
    """RCAN: residual groups of residual channel-attention blocks, long and short skips.

    The official code (EDSR-PyTorch's ``rcan.py``), through spandrel, with the official
    argument and parameter names.

    Args:
        scale: SR scale (2, 3, 4, 8); ``upscale`` here is a read-only alias.
        n_resgroups / n_resblocks: residual groups (10) and blocks per group (20).
        n_feats: feature channels (64); reduction: channel-attention reduction (16).
        n_colors: input and output channels.
        rgb_range: the range the network computes in (255, as the official code: inputs in
            [0, 1] are scaled up inside and the output scaled back).
        norm: subtract DIV2K's mean RGB at the head, add it back at the tail.
    """

    # Its features are in [0, 255] units (rgb_range 255): deep residual sums approach fp16's
    # 65504 range with trained weights; spandrel marks RCAN supports_half=False.
    precision = Precision(
        fp16=False, bf16=True, why="it computes in [0, 255] units; spandrel marks it unsafe"
    )

    @property
    def upscale(self) -> int:
        """SR scale (the official ``scale``)."""
        return int(self.hyperparameters["scale"])

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["n_colors"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """SR of ``x`` in ``[0, 1]``; ``x`` is left as it was (the official forward scales
        its input in place, which would change the batch the task scores and logs)."""
        return super().forward(x.clone())

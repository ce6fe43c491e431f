"""HAT (Chen et al., "Activating More Pixels in Image Super-Resolution Transformer", CVPR 2023)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_HAT = spandrel_class("HAT", "HAT")


class HAT(CommunityNetwork, _HAT):
    """Hybrid Attention Transformer: window attention plus a channel-attention branch in every
    block, and overlapping cross-attention between windows.

    The official code, through spandrel (official argument and parameter names). The
    arguments a config sets:

    Args:
        upscale: SR scale (2, 3, 4; ``pixelshuffle``).
        in_chans: input (and output) channels.
        img_size: training patch side (sets the precomputed masks).
        window_size: attention window side (16); inputs are padded to a multiple inside.
        compress_ratio / squeeze_factor: the channel-attention branch's reductions
            (``embed_dim // squeeze_factor`` must be >= 1).
        conv_scale: weight of the convolution branch; overlap_ratio: extra window border of
            the overlapping cross-attention.
        embed_dim, depths, num_heads, mlp_ratio: as in SwinIR.
        img_range: the range the network computes in (1: inputs in [0, 1]).

    Paper configurations: ``conf/model/hat.yaml``, ``hat_s.yaml``, ``hat_l.yaml``.
    """

    precision = Precision(
        fp16=False, bf16=True, why="a SwinIR-family attention; spandrel marks it unsafe in fp16"
    )

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["in_chans"])

    def check_image_size(self, x: torch.Tensor) -> torch.Tensor:
        """The input padded at the bottom and right to a multiple of the window, by reflection
        as the official code pads it; an input too small to reflect (a side of at most half a
        window: a smoke run's patch, the thin last tile of tiled inference) is padded by
        repeating its edge instead of failing in ``F.pad``."""
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.window_size, -width % self.window_size
        if not (pad_h or pad_w):
            return x
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode)

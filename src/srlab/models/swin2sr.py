"""Swin2SR (Conde et al., "Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution
and Restoration", ECCVW 2022)."""

from __future__ import annotations

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_Swin2SR = spandrel_class("Swin2SR", "Swin2SR")


class Swin2SR(CommunityNetwork, _Swin2SR):
    """Swin2SR: SwinIR with Swin Transformer V2 layers (scaled cosine attention, log-spaced
    continuous position bias, post-norm), which train more stably.

    The official code, through spandrel; arguments as :class:`srlab.models.swinir.SwinIR`
    (``upscale``, ``in_chans``, ``img_size``, ``window_size``, ``embed_dim``, ``depths``,
    ``num_heads``, ``mlp_ratio``, ``upsampler``, ``resi_connection``, ``img_range``).
    Paper configuration: ``conf/model/swin2sr.yaml`` (classical x2).
    """

    precision = Precision(
        fp16=False, bf16=True, why="a SwinIR-family attention; spandrel marks it unsafe in fp16"
    )

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["in_chans"])

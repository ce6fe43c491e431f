"""SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021)."""

from __future__ import annotations

import inspect
from typing import Any

from srlab.errors import ConfigError
from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_SwinIR = spandrel_class("SwinIR", "SwinIR")


class SwinIR(CommunityNetwork, _SwinIR):
    """SwinIR: residual groups of Swin Transformer layers (shifted-window attention).

    The official code, through spandrel; arguments and parameter names are the official
    ones, so the authors' releases load as they are. The ones a config sets:

    Args:
        upscale: SR scale (2, 3, 4, 8 with ``pixelshuffle``; any with ``pixelshuffledirect``;
            4 with ``nearest+conv``).
        in_chans: input (and output) channels.
        img_size: training patch side; sets the precomputed attention masks (inputs of other
            sizes compute theirs), which are part of the released weights.
        window_size: attention window side; inputs are padded to a multiple of it inside.
        embed_dim: feature channels; depths / num_heads: layers and heads per residual group.
        mlp_ratio: hidden width of each MLP, in multiples of ``embed_dim``.
        upsampler: ``pixelshuffle`` (classical), ``pixelshuffledirect`` (lightweight),
            ``nearest+conv`` (real-world).
        resi_connection: ``1conv`` or ``3conv`` (the large real-world model) after each group.
        img_range: the range the network computes in (1: inputs in [0, 1]).

    Paper configurations: ``conf/model/swinir.yaml`` (classical), ``swinir_light.yaml``,
    ``swinir_real.yaml``.
    """

    # fp16: SwinIR's attention overflows fp16 with trained weights (black or NaN images,
    # SwinIR issues #103 and #180; spandrel marks it supports_half=False).
    precision = Precision(
        fp16=False, bf16=True, why="fp16 overflows with trained weights (SwinIR #103, #180)"
    )

    def __init__(self, **kwargs: Any) -> None:
        # The official nearest+conv tail has two x2 stages whatever `upscale` says.
        if kwargs.get("upsampler") == "nearest+conv" and kwargs.get("upscale", 1) != 4:
            raise ConfigError(
                f"SwinIR's nearest+conv upsampler (the real-world models) is x4 only, but "
                f"upscale={kwargs.get('upscale')}: use scale=4 or upsampler=pixelshuffle"
            )
        super().__init__(**kwargs)

    # Config checks read the arguments from the signature: show spandrel's, not **kwargs.
    __init__.__signature__ = inspect.signature(_SwinIR.__init__)  # type: ignore[attr-defined]

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["in_chans"])

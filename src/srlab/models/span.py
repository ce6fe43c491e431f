"""SPAN (Wan et al., "Swift Parameter-free Attention Network for Efficient Super-Resolution",
CVPRW 2024; first in the NTIRE 2024 efficient SR challenge)."""

from __future__ import annotations

from typing import Any

from torch import nn

from srlab.models.community import CommunityNetwork, Precision, spandrel_class

_SPAN = spandrel_class("SPAN", "SPAN")


def _reparameterized(module: nn.Module) -> bool:
    # spandrel's Conv3XC: a 1x1-3x3-1x1 branch and a 1x1 skip for training, fused into one
    # 3x3 `eval_conv` for inference.
    return hasattr(module, "eval_conv") and hasattr(module, "update_params")


class SPAN(CommunityNetwork, _SPAN):
    """SPAN: six blocks of re-parameterizable 3x3 convolutions whose attention is a
    parameter-free symmetric activation of their own output.

    The official code, through spandrel (official argument and parameter names), with one
    change of when, not what: each re-parameterizable convolution is fused into its 3x3
    inference convolution when the network enters eval mode (and when weights are loaded in
    it), instead of at every eval-mode forward as the official code does. The outputs are the
    same; the official way writes parameters inside ``forward``, which ``torch.export`` (ONNX)
    cannot trace (it crashed the process here) and which costs a fusion per image.

    The parameter count includes both forms of each convolution (the training branches and
    the fused ``eval_conv``), as the official state dicts do.

    Args:
        num_in_ch / num_out_ch: input and output channels.
        feature_channels: width of every block (48 in the paper).
        upscale: SR scale (any: a pixel-shuffle tail).
        img_range / rgb_mean: inputs in [0, 1] are centred by ``rgb_mean`` and scaled by
            ``img_range`` inside (the official code's normalization).
    """

    precision = Precision(fp16=True, bf16=True, why="convolutions only; spandrel allows both")

    @property
    def upscale(self) -> int:
        """SR scale."""
        return int(self.hyperparameters["upscale"])

    @property
    def num_in_ch(self) -> int:
        """Channels of the LR input."""
        return int(self.hyperparameters["num_in_ch"])

    def _fuse(self) -> None:
        for module in self.modules():
            if _reparameterized(module):
                module.__dict__.pop("update_params", None)
                module.update_params()  # the official fusion, once
                module.update_params = _fused  # eval-mode forwards use eval_conv as it is

    def train(self, mode: bool = True) -> SPAN:
        """Set the mode; entering eval mode fuses the re-parameterizable convolutions."""
        super().train(mode)
        if mode:
            for module in self.modules():
                if _reparameterized(module):
                    module.__dict__.pop("update_params", None)
        else:
            self._fuse()
        return self

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load weights; in eval mode, fuse again from the loaded training branches."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if not self.training:
            self._fuse()
        return result


def _fused() -> None:
    """Stands in for ``Conv3XC.update_params`` once fused: nothing left to do."""

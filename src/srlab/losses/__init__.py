"""Training losses. Pixel losses: :class:`CharbonnierLoss` here; L1 and MSE are
``torch.nn.L1Loss`` and ``torch.nn.MSELoss`` used directly."""

from srlab.losses.pixel import CharbonnierLoss

__all__ = ["CharbonnierLoss"]

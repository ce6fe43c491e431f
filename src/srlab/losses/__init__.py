"""Training losses.

- Pixel: :class:`CharbonnierLoss` here; L1 and MSE are ``torch.nn.L1Loss`` and
  ``torch.nn.MSELoss`` used directly.
- Perceptual: :class:`PerceptualLoss` on the features of :class:`VGG19Features` (torchvision's
  parameter names, so its ImageNet weights load as they are).
- Adversarial: :class:`AdversarialLoss` (``ragan``, ``vanilla``, ``lsgan``, ``hinge``,
  ``wgan-gp``) and the functions behind it.
- Perceptual metrics as losses: :class:`LPIPSLoss`, :class:`DISTSLoss`; :class:`WeightedLoss`
  sums weighted terms (L1 + LPIPS for a regression model).
"""

from srlab.losses.adversarial import (
    GAN_TYPES,
    AdversarialLoss,
    gradient_penalty,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from srlab.losses.metric_losses import DISTSLoss, LPIPSLoss, WeightedLoss
from srlab.losses.perceptual import PerceptualLoss
from srlab.losses.pixel import CharbonnierLoss
from srlab.losses.vgg import (
    TORCHVISION_VGG19_URL,
    VGG19_LAYER_NAMES,
    VGG19Features,
    load_torchvision_vgg19,
)

__all__ = [
    "GAN_TYPES",
    "TORCHVISION_VGG19_URL",
    "VGG19_LAYER_NAMES",
    "AdversarialLoss",
    "CharbonnierLoss",
    "DISTSLoss",
    "LPIPSLoss",
    "PerceptualLoss",
    "VGG19Features",
    "WeightedLoss",
    "gradient_penalty",
    "load_torchvision_vgg19",
    "ragan_discriminator_loss",
    "ragan_generator_loss",
]

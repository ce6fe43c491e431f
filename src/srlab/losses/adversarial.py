"""Adversarial losses for SR GANs: standard, least-squares, hinge, WGAN-GP and relativistic.

All functions take the discriminator's raw outputs (logits or critic scores) of any shape
(``[B, 1]`` for ESRGAN's VGG-style discriminator, ``[B, 1, H, W]`` for the U-Net one) and
average over every element.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GAN_TYPES",
    "AdversarialLoss",
    "gradient_penalty",
    "ragan_discriminator_loss",
    "ragan_generator_loss",
]

GAN_TYPES = ("ragan", "vanilla", "lsgan", "hinge", "wgan-gp")


def _bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def ragan_discriminator_loss(
    real_pred: torch.Tensor,
    fake_pred: torch.Tensor,
    real_label: float = 1.0,
    fake_label: float = 0.0,
) -> torch.Tensor:
    r"""Discriminator loss of the relativistic average GAN (RaGAN), as in ESRGAN.

    Jolicoeur-Martineau, "The relativistic discriminator: a key element missing from standard
    GAN" (ICLR 2019); used by Wang et al., ESRGAN (ECCVW 2018), Sec. 3.3, Eq. 1-2:

    .. math::
        L_D^{Ra} = \tfrac12\big(\mathrm{BCE}(C(x_r) - \mathbb{E}[C(x_f)], 1)
                 + \mathrm{BCE}(C(x_f) - \mathbb{E}[C(x_r)], 0)\big)

    The discriminator estimates whether a real image is *more realistic than the average fake*
    rather than whether it is real. The 1/2 follows the ESRGAN authors' code (mmsr); gradients
    flow through both terms, including the batch means.

    Args:
        real_pred: Discriminator outputs ``C(x_r)`` on real (HR) images.
        fake_pred: Discriminator outputs ``C(x_f)`` on generated (SR) images.
        real_label: Target of the "more real" term (1; less for label smoothing).
        fake_label: Target of the "less real" term.

    Returns:
        The scalar loss.
    """
    real_vs_fake = real_pred - fake_pred.mean()
    fake_vs_real = fake_pred - real_pred.mean()
    return 0.5 * (_bce(real_vs_fake, real_label) + _bce(fake_vs_real, fake_label))


def ragan_generator_loss(
    fake_pred: torch.Tensor,
    real_pred: torch.Tensor,
    real_label: float = 1.0,
    fake_label: float = 0.0,
) -> torch.Tensor:
    r"""Generator loss of the relativistic average GAN, symmetric to the discriminator's.

    ESRGAN (Wang et al., ECCVW 2018), Sec. 3.3, Eq. 2:

    .. math::
        L_G^{Ra} = \tfrac12\big(\mathrm{BCE}(C(x_r) - \mathbb{E}[C(x_f)], 0)
                 + \mathrm{BCE}(C(x_f) - \mathbb{E}[C(x_r)], 1)\big)

    Unlike the standard GAN, the generator gets gradients from both real and fake images
    (through the mean of ``C(x_f)`` in the first term), which the paper credits for sharper
    edges and richer textures. ``real_pred`` is treated as a constant.

    Args:
        fake_pred: Discriminator outputs on generated images (with a graph to the generator).
        real_pred: Discriminator outputs on real images (detached here).
        real_label: Target of the fake term.
        fake_label: Target of the real term.

    Returns:
        The scalar loss.
    """
    # The discriminator's loss with the targets swapped.
    return ragan_discriminator_loss(
        real_pred.detach(), fake_pred, real_label=fake_label, fake_label=real_label
    )


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The gradient penalty of WGAN-GP, without its weight :math:`\lambda`.

    Gulrajani, Ahmed, Arjovsky, Dumoulin and Courville, "Improved Training of Wasserstein GANs"
    (NeurIPS 2017), Eq. 3 and Algorithm 1:

    .. math:: \mathbb{E}_{\hat x}\big[(\lVert \nabla_{\hat x} D(\hat x) \rVert_2 - 1)^2\big],
        \quad \hat x = \alpha x_r + (1 - \alpha) x_f,\ \alpha \sim U[0, 1] \text{ per sample}

    The graph is kept (``create_graph=True``) so the penalty trains the discriminator. The
    discriminator runs with autocast disabled: input gradients of a float16 forward would
    underflow without a loss scale. The paper advises against batch norm in the critic (it
    couples samples, and the penalty is defined per sample); use the U-Net discriminator, or
    accept the coupling.

    Args:
        discriminator: The critic ``D``.
        real: Real images ``[B, C, H, W]`` (detached here).
        fake: Generated images, same shape (detached here).
        alpha: Interpolation weights ``[B, 1, 1, 1]``; drawn uniformly when None.

    Returns:
        The scalar penalty.
    """
    real, fake = real.detach(), fake.detach()
    if alpha is None:
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = discriminator(mixed)
    # Samples are independent (without batch norm), so the gradient of the sum w.r.t. each
    # input is that sample's own gradient.
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    norms = grads.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


class AdversarialLoss(nn.Module):
    """The adversarial losses of a GAN type, for the generator and the discriminator steps.

    Types (``gan_type``), with the generator loss ``L_G`` and discriminator loss ``L_D``;
    ``r`` and ``f`` are the discriminator's outputs on real and fake images:

    - ``ragan`` (default; ESRGAN, Wang et al. ECCVW 2018): relativistic average GAN, see
      :func:`ragan_discriminator_loss` and :func:`ragan_generator_loss`. Needs ``r`` in the
      generator step too.
    - ``vanilla`` (Goodfellow et al., NeurIPS 2014; SRGAN): ``L_D = BCE(r, 1) + BCE(f, 0)``,
      ``L_G = BCE(f, 1)`` (the non-saturating generator loss).
    - ``lsgan`` (Mao et al., ICCV 2017): ``L_D = mean((r - 1)^2) + mean(f^2)``,
      ``L_G = mean((f - 1)^2)``.
    - ``hinge`` (Lim and Ye 2017; Miyato et al., ICLR 2018):
      ``L_D = mean(relu(1 - r)) + mean(relu(1 + f))``, ``L_G = -mean(f)``.
    - ``wgan-gp`` (Gulrajani et al., NeurIPS 2017): ``L_D = mean(f) - mean(r) + gp_weight *
      GP`` (:func:`gradient_penalty`, added by :meth:`penalty`), ``L_G = -mean(f)``.

    Args:
        gan_type: One of :data:`GAN_TYPES`.
        real_label: Target of real images for ``vanilla``, ``lsgan`` and ``ragan`` (1; e.g.
            0.9 for one-sided label smoothing).
        fake_label: Target of fake images for the same types.
        gp_weight: Weight ``lambda`` of the gradient penalty of ``wgan-gp`` (10 in the paper).

    Raises:
        ValueError: For an unknown ``gan_type``.

    Example:
        >>> loss = AdversarialLoss("hinge")
        >>> loss.discriminator_loss(torch.tensor([2.0]), torch.tensor([-0.5])).item()
        0.5
    """

    def __init__(
        self,
        gan_type: str = "ragan",
        real_label: float = 1.0,
        fake_label: float = 0.0,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(
                f"AdversarialLoss: unknown gan_type {gan_type!r}; choose one of "
                f"{', '.join(GAN_TYPES)}"
            )
        self.gan_type = gan_type
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)
        self.gp_weight = float(gp_weight)

    @property
    def relativistic(self) -> bool:
        """Whether the generator loss also needs the discriminator's outputs on real images."""
        return self.gan_type == "ragan"

    def generator_loss(
        self, fake_pred: torch.Tensor, real_pred: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The generator's adversarial loss from ``D(fake)`` (and ``D(real)`` for ``ragan``)."""
        kind = self.gan_type
        if kind == "ragan":
            if real_pred is None:
                raise ValueError("the ragan generator loss needs real_pred = D(real images)")
            return ragan_generator_loss(fake_pred, real_pred, self.real_label, self.fake_label)
        if kind == "vanilla":
            return _bce(fake_pred, self.real_label)
        if kind == "lsgan":
            return F.mse_loss(fake_pred, torch.full_like(fake_pred, self.real_label))
        return -fake_pred.mean()  # hinge and wgan-gp

    def discriminator_loss(self, real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss from ``D(real)`` and ``D(fake)`` (without any penalty)."""
        kind = self.gan_type
        if kind == "ragan":
            return ragan_discriminator_loss(real_pred, fake_pred, self.real_label, self.fake_label)
        if kind == "vanilla":
            return _bce(real_pred, self.real_label) + _bce(fake_pred, self.fake_label)
        if kind == "lsgan":
            return F.mse_loss(real_pred, torch.full_like(real_pred, self.real_label)) + F.mse_loss(
                fake_pred, torch.full_like(fake_pred, self.fake_label)
            )
        if kind == "hinge":
            return F.relu(1 - real_pred).mean() + F.relu(1 + fake_pred).mean()
        return fake_pred.mean() - real_pred.mean()  # wgan-gp

    def penalty(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor | None:
        """``gp_weight`` times the gradient penalty for ``wgan-gp``; None for other types."""
        if self.gan_type != "wgan-gp" or self.gp_weight == 0:
            return None
        return self.gp_weight * gradient_penalty(discriminator, real, fake)

    def extra_repr(self) -> str:
        """The GAN type (and labels, penalty weight where they apply), for ``print(model)``."""
        if self.gan_type == "wgan-gp":
            return f"gan_type='wgan-gp', gp_weight={self.gp_weight}"
        if self.gan_type == "hinge":
            return "gan_type='hinge'"
        return f"gan_type={self.gan_type!r}, real_label={self.real_label}, fake_label={self.fake_label}"

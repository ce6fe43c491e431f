"""Discriminators of SR GANs: ESRGAN's VGG-style network and Real-ESRGAN's U-Net with spectral
normalization. Parameter names are BasicSR's (``basicsr/archs/discriminator_arch.py``), so its
released discriminator weights load as they are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

__all__ = ["UNetDiscriminatorSN", "VGGStyleDiscriminator"]

# Input size -> number of (3x3 conv, 4x4 stride-2 conv) stages, each halving the size, down to
# the spatial size that the first linear layer sees: 128 -> 4x4 (ESRGAN, SRGAN); 192 -> 3x3
# (the ESRGAN authors' Discriminator_VGG_192); 256 -> 4x4 (BasicSR).
_VGG_STAGES = {128: 5, 192: 6, 256: 6}


class VGGStyleDiscriminator(nn.Module):
    """VGG-style discriminator of SRGAN and ESRGAN for fixed-size HR patches.

    Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
    Network" (SRGAN, CVPR 2017), Fig. 4, as used by Wang et al., "ESRGAN: Enhanced
    Super-Resolution Generative Adversarial Networks" (ECCVW 2018) on 128x128 patches.

    Architecture: ``conv0_0`` (3x3, bias) + LeakyReLU(0.2), then stages ``k = 0..n-1`` of
    ``conv{k}_0`` (3x3, stride 1) and ``conv{k}_1`` (4x4, stride 2), each followed by
    ``bn{k}_*`` (batch norm; the first stage has none after ``conv0_0``) and LeakyReLU(0.2);
    channels ``num_feat * (1, 2, 4, 8, 8, 8)``. The last feature map (4x4, or 3x3 for 192) is
    flattened into ``linear1`` (100 units, LeakyReLU) and ``linear2`` (one logit).

    Names follow BasicSR's ``VGGStyleDiscriminator`` (``conv0_0``, ``bn0_1``, ...,
    ``linear1``, ``linear2``); input sizes 128 and 256 are BasicSR's, 192 the ESRGAN authors'
    ``Discriminator_VGG_192`` with the same naming.

    Shapes: input ``[B, num_in_ch, input_size, input_size]``; output ``[B, 1]`` (logits).

    Args:
        num_in_ch: Channels of the images (3 for RGB).
        num_feat: Channels of the first stage (64 in the papers).
        input_size: Side of the square patches: 128, 192 or 256. It must equal the HR
            training patch size (``data.patch_size``).

    Raises:
        ValueError: For another ``input_size`` (at construction), or an input whose size is
            not ``input_size`` (in ``forward``).

    Example:
        >>> d = VGGStyleDiscriminator(num_in_ch=3, num_feat=8, input_size=128)
        >>> d(torch.rand(2, 3, 128, 128)).shape
        torch.Size([2, 1])
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in _VGG_STAGES:
            raise ValueError(
                f"VGGStyleDiscriminator: input_size {input_size} is not supported; choose one "
                f"of {', '.join(map(str, _VGG_STAGES))} and train on HR patches of that size "
                "(data.patch_size), or use UNetDiscriminatorSN, which takes any size"
            )
        self.input_size = input_size
        self.num_stages = _VGG_STAGES[input_size]
        widths = [num_feat * m for m in (1, 2, 4, 8, 8, 8)][: self.num_stages]
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        for k in range(1, self.num_stages):
            in_ch, out_ch = widths[k - 1], widths[k]
            # Batch norm follows every conv but the first, so the convs carry no bias.
            setattr(self, f"conv{k}_0", nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False))
            setattr(self, f"bn{k}_0", nn.BatchNorm2d(out_ch, affine=True))
            setattr(self, f"conv{k}_1", nn.Conv2d(out_ch, out_ch, 4, 2, 1, bias=False))
            setattr(self, f"bn{k}_1", nn.BatchNorm2d(out_ch, affine=True))
        final_size = input_size // 2**self.num_stages
        self.linear1 = nn.Linear(widths[-1] * final_size * final_size, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One realness logit per image: ``[B, C, S, S]`` -> ``[B, 1]``."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) got images of size "
                f"{tuple(x.shape[-2:])}: set data.patch_size={self.input_size} (HR patch side) "
                "or the discriminator's input_size to the patch size"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for k in range(1, self.num_stages):
            for j in (0, 1):
                conv, bn = getattr(self, f"conv{k}_{j}"), getattr(self, f"bn{k}_{j}")
                feat = self.lrelu(bn(conv(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral normalization, of Real-ESRGAN.

    Wang, Xie, Dong and Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with
    Pure Synthetic Data" (ICCV Workshops 2021), Sec. 3.3 and Fig. 6. A U-Net outputs a realness
    value *per pixel*, so the generator gets local feedback; spectral normalization (Miyato et
    al., ICLR 2018) stabilizes the training that the stronger discriminator would otherwise
    make unstable. Real-ESRGAN trains it with the ``vanilla`` GAN loss (weight 0.1).

    Architecture: ``conv0`` (3x3), three 4x4 stride-2 convs down (``conv1``-``conv3``,
    ``num_feat * 2/4/8`` channels), three bilinear x2 upsamplings each followed by a 3x3 conv
    (``conv4``-``conv6``) with skip sums from the encoder, two 3x3 convs (``conv7``,
    ``conv8``) and ``conv9`` to one channel; LeakyReLU(0.2) between all; spectral norm on
    ``conv1``-``conv8``. Names follow BasicSR's ``UNetDiscriminatorSN``; spectral norm is
    ``torch.nn.utils.spectral_norm`` (parameters ``weight_orig``, buffers ``weight_u`` and
    ``weight_v``), as in BasicSR, so its checkpoints load.

    Shapes: input ``[B, num_in_ch, H, W]`` with ``H`` and ``W`` divisible by 8; output
    ``[B, 1, H, W]`` (logits).

    Args:
        num_in_ch: Channels of the images.
        num_feat: Channels of the first conv (64 in Real-ESRGAN).
        skip_connection: Sum the encoder features into the decoder (the U-Net skips).

    Example:
        >>> d = UNetDiscriminatorSN(num_in_ch=3, num_feat=8)
        >>> d(torch.rand(2, 3, 32, 48)).shape
        torch.Size([2, 1, 32, 48])
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True):
        super().__init__()
        self.skip_connection = skip_connection
        norm = spectral_norm
        self.conv0 = nn.Conv2d(num_in_ch, num_feat, kernel_size=3, stride=1, padding=1)
        # downsampling
        self.conv1 = norm(nn.Conv2d(num_feat, num_feat * 2, 4, 2, 1, bias=False))
        self.conv2 = norm(nn.Conv2d(num_feat * 2, num_feat * 4, 4, 2, 1, bias=False))
        self.conv3 = norm(nn.Conv2d(num_feat * 4, num_feat * 8, 4, 2, 1, bias=False))
        # upsampling
        self.conv4 = norm(nn.Conv2d(num_feat * 8, num_feat * 4, 3, 1, 1, bias=False))
        self.conv5 = norm(nn.Conv2d(num_feat * 4, num_feat * 2, 3, 1, 1, bias=False))
        self.conv6 = norm(nn.Conv2d(num_feat * 2, num_feat, 3, 1, 1, bias=False))
        # extra convolutions
        self.conv7 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv8 = norm(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(num_feat, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel realness logits: ``[B, C, H, W]`` -> ``[B, 1, H, W]``."""
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(
                f"UNetDiscriminatorSN needs a height and width divisible by 8 (three x2 "
                f"downsamplings), got {tuple(x.shape[-2:])}: choose data.patch_size accordingly"
            )

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        up = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = act(self.conv4(up))
        if self.skip_connection:
            x4 = x4 + x2
        up = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = act(self.conv5(up))
        if self.skip_connection:
            x5 = x5 + x1
        up = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = act(self.conv6(up))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)

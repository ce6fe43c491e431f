"""GAN losses against hand-computed values, the VGG19 perceptual loss with torchvision's key
layout, and the discriminators' shapes and BasicSR parameter names."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlab.errors import ConfigError
from srlab.losses import (
    AdversarialLoss,
    PerceptualLoss,
    VGG19Features,
    gradient_penalty,
    ragan_discriminator_loss,
    ragan_generator_loss,
)
from srlab.losses.vgg import VGG19_LAYER_NAMES
from srlab.models.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from srlab.weights import PretrainedError

REAL = torch.tensor([1.0, 2.0])
FAKE = torch.tensor([0.0, -1.0])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _bce(logit: float, label: float) -> float:
    # -[y log s(x) + (1 - y) log(1 - s(x))] = y softplus(-x) + (1 - y) softplus(x)
    return label * _softplus(-logit) + (1 - label) * _softplus(logit)


def _mean_bce(logits: list[float], label: float) -> float:
    return sum(_bce(x, label) for x in logits) / len(logits)


# -- relativistic average GAN --------------------------------------------------------------


def test_ragan_discriminator_loss_by_hand() -> None:
    # mean(real) = 1.5, mean(fake) = -0.5
    real_vs_fake = [1.0 + 0.5, 2.0 + 0.5]
    fake_vs_real = [0.0 - 1.5, -1.0 - 1.5]
    expected = 0.5 * (_mean_bce(real_vs_fake, 1.0) + _mean_bce(fake_vs_real, 0.0))
    assert ragan_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)
    assert AdversarialLoss("ragan").discriminator_loss(REAL, FAKE).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_ragan_generator_loss_by_hand_and_its_gradients() -> None:
    real_vs_fake = [1.5, 2.5]
    fake_vs_real = [-1.5, -2.5]
    expected = 0.5 * (_mean_bce(real_vs_fake, 0.0) + _mean_bce(fake_vs_real, 1.0))
    fake = FAKE.clone().requires_grad_(True)
    real = REAL.clone().requires_grad_(True)
    loss = AdversarialLoss("ragan").generator_loss(fake, real)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # The generator's loss treats D(real) as a constant; D(fake) gets gradients from both
    # terms (the second through the batch mean in the first).
    assert real.grad is None
    assert fake.grad is not None and torch.all(fake.grad < 0)
    with pytest.raises(ValueError, match="real_pred"):
        AdversarialLoss("ragan").generator_loss(FAKE)
    assert ragan_generator_loss(FAKE, REAL).item() == pytest.approx(expected, rel=1e-6)


def test_other_gan_types_by_hand() -> None:
    cases = {
        # (discriminator loss, generator loss)
        "vanilla": (_mean_bce([1, 2], 1) + _mean_bce([0, -1], 0), _mean_bce([0, -1], 1)),
        "lsgan": (((0**2 + 1**2) / 2) + ((0**2 + 1**2) / 2), ((1**2 + 2**2) / 2)),
        "hinge": ((0 + 0) / 2 + (1 + 0) / 2, 0.5),
        "wgan-gp": (-0.5 - 1.5, 0.5),
    }
    for gan_type, (d_expected, g_expected) in cases.items():
        loss = AdversarialLoss(gan_type)
        assert not loss.relativistic
        assert loss.discriminator_loss(REAL, FAKE).item() == pytest.approx(d_expected, rel=1e-6)
        assert loss.generator_loss(FAKE).item() == pytest.approx(g_expected, rel=1e-6)
    with pytest.raises(ValueError, match="ragan, vanilla"):
        AdversarialLoss("wgan")


# -- gradient penalty ----------------------------------------------------------------------


class _Linear(nn.Module):
    """D(x) = <w, x> per sample: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


class _Quadratic(nn.Module):
    """D(x) = 0.5 * |x|^2 per sample: its input gradient is x itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_gradient_penalty_of_a_linear_critic() -> None:
    w = torch.tensor([[[[3.0, 0.0], [0.0, 4.0]]]])  # |w| = 5
    critic = _Linear(w.clone())
    penalty = gradient_penalty(critic, torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2))
    assert penalty.item() == pytest.approx((5 - 1) ** 2)
    # create_graph: the penalty trains the critic. d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|.
    penalty.backward()
    torch.testing.assert_close(critic.w.grad, 2 * (5 - 1) * w / 5)


def test_gradient_penalty_interpolates_per_sample() -> None:
    real = torch.tensor([[[[2.0, 0.0]]], [[[0.0, 1.0]]]])
    fake = torch.tensor([[[[0.0, 0.0]]], [[[0.0, 3.0]]]])
    alpha = torch.tensor([0.25, 0.5]).view(2, 1, 1, 1)
    # x_hat = [0.5, 0], [0, 2]: gradient norms 0.5 and 2 -> ((0.5 - 1)^2 + (2 - 1)^2) / 2
    penalty = gradient_penalty(_Quadratic(), real, fake, alpha=alpha)
    assert penalty.item() == pytest.approx((0.25 + 1.0) / 2)

    loss = AdversarialLoss("wgan-gp", gp_weight=10.0)
    critic = _Linear(torch.full((1, 1, 1, 2), 1.0))  # |w| = sqrt(2)
    weighted = loss.penalty(critic, real, fake)
    assert weighted.item() == pytest.approx(10 * (math.sqrt(2) - 1) ** 2, rel=1e-6)
    assert AdversarialLoss("ragan").penalty(critic, real, fake) is None


# -- VGG19 and the perceptual loss ---------------------------------------------------------

# torchvision.models.vgg19().features: (index, out channels, in channels) of each conv.
TORCHVISION_CONVS = [
    (0, 64, 3), (2, 64, 64),
    (5, 128, 64), (7, 128, 128),
    (10, 256, 128), (12, 256, 256), (14, 256, 256), (16, 256, 256),
    (19, 512, 256), (21, 512, 512), (23, 512, 512), (25, 512, 512),
    (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512),
]  # fmt: skip


def torchvision_vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's vgg19 key names and shapes (random values).

    The classifier is included with its official key names but small stand-in tensors (the
    real ones are 120 M parameters); a feature extractor must drop it whatever its shape.
    """
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, out_ch, in_ch in TORCHVISION_CONVS:
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * 0.05
        state[f"features.{index}.bias"] = torch.randn(out_ch, generator=g) * 0.05
    for index in (0, 3, 6):
        state[f"classifier.{index}.weight"] = torch.zeros(2, 2)
        state[f"classifier.{index}.bias"] = torch.zeros(2)
    return state


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vgg") / "vgg19-test.pth"
    torch.save(torchvision_vgg19_state(), path)
    return path


def test_layer_names_have_torchvision_indices() -> None:
    index = VGG19Features.layer_index
    assert len(VGG19_LAYER_NAMES) == 37
    assert (index("conv1_1"), index("relu2_2"), index("conv5_4"), index("relu5_4")) == (
        0,
        8,
        34,
        35,
    )
    assert [name for name in VGG19_LAYER_NAMES if name.startswith("conv")] == [
        VGG19_LAYER_NAMES[i] for i, _, _ in TORCHVISION_CONVS
    ]
    with pytest.raises(ValueError, match="conv5_4"):
        index("conv6_1")


def test_torchvision_state_dict_loads_strictly(vgg_file: Path) -> None:
    state = torchvision_vgg19_state()
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    vgg = VGG19Features()
    vgg.load_state_dict(features, strict=True)  # the official names and shapes, exactly

    loss = PerceptualLoss(["conv5_4"], weights=str(vgg_file))
    for key, value in features.items():
        assert torch.equal(loss.vgg.state_dict()[key], value), key
    assert not any(p.requires_grad for p in loss.vgg.parameters())


def test_wrong_vgg_file_is_an_error(tmp_path: Path) -> None:
    state = torchvision_vgg19_state()
    del state["features.34.bias"]
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedError, match=r"missing: features\.34\.bias(.|\n)*wrong shape"):
        PerceptualLoss(weights=str(path))


def test_perceptual_loss_matches_its_definition(vgg_file: Path) -> None:
    loss = PerceptualLoss(["conv2_2", "relu3_1"], [0.5, 2.0], criterion="l2", weights=str(vgg_file))
    torch.manual_seed(0)
    sr = torch.rand(2, 3, 16, 16, requires_grad=True)
    hr = torch.rand(2, 3, 16, 16)
    features = loss.vgg.features
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def feature(x: torch.Tensor, index: int) -> torch.Tensor:
        return features[: index + 1]((x - mean) / std)

    expected = 0.5 * F.mse_loss(feature(sr, 7), feature(hr, 7)) + 2.0 * F.mse_loss(
        feature(sr, 11), feature(hr, 11)
    )
    got = loss(sr, hr)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    # Grayscale (Y-network) images are compared as RGB.
    gray = loss(sr[:, :1], hr[:, :1])
    torch.testing.assert_close(gray, loss(sr[:, :1].expand(-1, 3, -1, -1), hr[:, :1].expand_as(hr)))


def test_missing_weights_refuse_to_start_unless_allowed(tmp_path: Path, caplog) -> None:
    with pytest.raises(ConfigError, match="allow_random_weights=true"):
        PerceptualLoss(weights=None)
    with pytest.raises(ConfigError, match=r"not found(.|\n)*model.loss.perceptual.weights"):
        PerceptualLoss(weights=str(tmp_path / "absent.pth"))
    for layers, layer_weights in ((["conv9_9"], None), (["conv5_4"], [1.0, 2.0]), ([], None)):
        with pytest.raises(ConfigError, match="model.loss.perceptual.layers"):
            PerceptualLoss(layers, layer_weights, weights=None, allow_random_weights=True)
    with pytest.raises(ConfigError, match="criterion"):
        PerceptualLoss(criterion="fro", weights=None, allow_random_weights=True)

    loss = PerceptualLoss(weights=str(tmp_path / "absent.pth"), allow_random_weights=True)
    assert loss.weights_source is None
    assert "random VGG19 weights" in caplog.text


def test_vgg_stays_out_of_state_dicts_and_random_weights_are_reproducible(
    vgg_file: Path,
) -> None:
    from_file = PerceptualLoss(weights=str(vgg_file))
    assert not any(k.startswith("vgg.") for k in from_file.state_dict())
    # A state dict without them loads strictly and keeps the file's weights.
    before = from_file.vgg.features[0].weight.clone()
    from_file.load_state_dict({}, strict=True)
    assert torch.equal(from_file.vgg.features[0].weight, before)

    # Random weights come from a fixed seed, not the global RNG: a resumed run rebuilds them.
    torch.manual_seed(1)
    first = PerceptualLoss(weights=None, allow_random_weights=True)
    torch.manual_seed(2)
    second = PerceptualLoss(weights=None, allow_random_weights=True)
    assert torch.equal(first.vgg.features[34].weight, second.vgg.features[34].weight)
    assert first.state_dict() == {}


# -- discriminators ------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "final"), [(128, 4), (192, 3), (256, 4)])
def test_vgg_style_discriminator_sizes(size: int, final: int) -> None:
    d = VGGStyleDiscriminator(num_in_ch=3, num_feat=4, input_size=size)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1)
    assert d.linear1.in_features == 4 * 8 * final * final
    with pytest.raises(ValueError, match=f"data.patch_size={size}"):
        d(torch.rand(1, 3, 64, 64))


def test_vgg_style_discriminator_is_esrgans() -> None:
    d = VGGStyleDiscriminator(num_in_ch=3, num_feat=64, input_size=128)
    assert sum(p.numel() for p in d.parameters()) == 14_499_401
    keys = set(d.state_dict())
    # BasicSR names: conv{k}_{0,1}, bn{k}_{0,1} for k = 0..4, linear1/2.
    assert {"conv0_0.bias", "bn0_1.running_var", "conv4_1.weight", "linear2.bias"} <= keys
    assert "conv0_1.bias" not in keys and "conv5_0.weight" not in keys
    with pytest.raises(ValueError, match="128, 192, 256"):
        VGGStyleDiscriminator(input_size=96)


def test_unet_discriminator_sn() -> None:
    d = UNetDiscriminatorSN(num_in_ch=3, num_feat=64)
    assert sum(p.numel() for p in d.parameters()) == 4_376_897  # Real-ESRGAN's netD
    keys = set(d.state_dict())
    assert {"conv0.weight", "conv1.weight_orig", "conv1.weight_u", "conv9.bias"} <= keys
    small = UNetDiscriminatorSN(num_in_ch=3, num_feat=4)
    assert small(torch.rand(2, 3, 24, 40)).shape == (2, 1, 24, 40)
    with pytest.raises(ValueError, match="divisible by 8"):
        small(torch.rand(1, 3, 20, 20))

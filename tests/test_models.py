"""EDSR and the shared blocks: shapes, exact parameter counts, mean shift, errors, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srlab.models import EDSR, MeanShift, ResidualBlockNoBN, Upsample, conv3x3

# The two presets of the paper, as the conf/model YAMLs spell them.
EDSR_BASELINE = {"num_feat": 64, "num_block": 16, "res_scale": 1.0}
EDSR_LARGE = {"num_feat": 256, "num_block": 32, "res_scale": 0.1}
TINY = {"num_feat": 8, "num_block": 2, "res_scale": 0.5}

LR_SHAPE = (1, 3, 12, 10)  # non-square on purpose: catches any swapped H/W


def count_trainable(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def expected_edsr_params(num_feat: int, num_block: int, upscale: int, ch: int = 3) -> int:
    """Parameter count derived from the architecture, independently of the code under test."""

    def conv(cin: int, cout: int) -> int:
        return 9 * cin * cout + cout

    up = {2: conv(num_feat, 4 * num_feat), 3: conv(num_feat, 9 * num_feat)}
    up[4] = 2 * up[2]
    return (
        conv(ch, num_feat)  # head
        + 2 * num_block * conv(num_feat, num_feat)  # residual blocks
        + conv(num_feat, num_feat)  # conv closing the body
        + up[upscale]
        + conv(num_feat, ch)  # tail conv
    )


# Published/derived trainable-parameter counts. 1,369,859 is the EDSR authors' baseline x2
# (sanghyun-son/EDSR-PyTorch, BasicSR's model zoo); the paper's "1.5M" and "43M" are x3/x4.
BASELINE_PARAMS = {2: 1_369_859, 3: 1_554_499, 4: 1_517_571}
LARGE_PARAMS = {2: 40_729_603, 3: 43_680_003, 4: 43_089_923}


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_edsr_baseline_parameter_counts(upscale: int) -> None:
    net = EDSR(upscale=upscale, **EDSR_BASELINE)
    n = count_trainable(net)
    assert n == BASELINE_PARAMS[upscale]
    assert n == expected_edsr_params(64, 16, upscale)
    # Everything is trainable: the mean shift adds no parameters.
    assert n == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_edsr_large_preset(upscale: int) -> None:
    """Build the 40 M-parameter preset once per scale; no full forward, to keep tests fast."""
    net = EDSR(upscale=upscale, **EDSR_LARGE)
    n = count_trainable(net)
    assert n == LARGE_PARAMS[upscale]
    assert n == expected_edsr_params(256, 32, upscale)
    if upscale == 2:
        assert abs(n - 40.7e6) < 0.05e6
    assert net.upscale == upscale
    assert net.num_in_ch == 3
    assert net.body[0].res_scale == 0.1
    assert net.upsample(torch.zeros(1, 256, 3, 2)).shape == (1, 256, 3 * upscale, 2 * upscale)


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("preset", [EDSR_BASELINE, TINY], ids=["edsr_baseline", "tiny"])
def test_edsr_output_shape(preset: dict, upscale: int) -> None:
    net = EDSR(upscale=upscale, **preset).eval()
    assert net.upscale == upscale
    assert net.num_in_ch == 3
    with torch.no_grad():
        sr = net(torch.rand(LR_SHAPE))
    b, c, h, w = LR_SHAPE
    assert sr.shape == (b, c, upscale * h, upscale * w)
    assert sr.dtype == torch.float32
    assert torch.isfinite(sr).all()


def test_edsr_y_channel_needs_explicit_mean() -> None:
    with pytest.raises(ValueError, match="rgb_mean=None"):
        EDSR(num_in_ch=1, num_out_ch=1, **TINY)
    net = EDSR(num_in_ch=1, num_out_ch=1, rgb_mean=None, upscale=3, **TINY)
    assert net.num_in_ch == 1
    assert net(torch.rand(2, 1, 5, 4)).shape == (2, 1, 15, 12)


def test_edsr_zero_or_none_mean_is_identity_shift() -> None:
    torch.manual_seed(0)
    with_none = EDSR(rgb_mean=None, **TINY)
    with_zeros = EDSR(rgb_mean=(0.0, 0.0, 0.0), **TINY)
    with_zeros.load_state_dict(with_none.state_dict())
    x = torch.rand(LR_SHAPE)
    torch.testing.assert_close(with_zeros(x), with_none(x))


def test_edsr_mean_shift_subtracts_then_adds() -> None:
    """A network whose convs are all zero outputs exactly the input's mean back, at every pixel."""
    net = EDSR(upscale=2, **TINY)
    for p in net.parameters():
        nn.init.zeros_(p)
    sr = net(torch.rand(LR_SHAPE))
    expected = torch.tensor((0.4488, 0.4371, 0.4040)).view(1, 3, 1, 1).expand_as(sr)
    torch.testing.assert_close(sr, expected)


def test_edsr_img_range_255_equals_rescaled_biases() -> None:
    """img_range only rescales the internal range: f_255(x) == f_1(x) with biases * 255."""
    torch.manual_seed(0)
    net1 = EDSR(upscale=2, img_range=1.0, **TINY)
    net255 = EDSR(upscale=2, img_range=255.0, **TINY)
    state = {
        k: v * 255.0 if k.endswith("bias") and not k.startswith("conv_last") else v
        for k, v in net1.state_dict().items()
    }
    state["conv_last.bias"] = net1.conv_last.bias.detach() * 255.0
    net255.load_state_dict(state)
    x = torch.rand(LR_SHAPE)
    torch.testing.assert_close(net255(x), net1(x), rtol=1e-4, atol=1e-5)


def test_edsr_state_dict_keys_match_basicsr() -> None:
    keys = set(EDSR(upscale=4, **TINY).state_dict())
    expected = {"conv_first.weight", "conv_after_body.bias", "conv_last.weight"}
    expected |= {"body.0.conv1.weight", "body.1.conv2.bias"}
    expected |= {"upsample.0.weight", "upsample.2.weight"}  # two x2 stages at x4
    assert expected <= keys
    assert not any("mean" in k or "shift" in k for k in keys)


def test_gradient_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = EDSR(upscale=3, **TINY)
    lr = torch.rand(2, 3, 6, 5)
    loss = nn.functional.l1_loss(net(lr), torch.rand(2, 3, 18, 15))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_mean_shift_is_fixed_and_moves_with_module() -> None:
    shift = MeanShift((0.4488, 0.4371, 0.4040), sign=-1)
    assert list(shift.parameters()) == []
    assert shift.state_dict() == {}  # the mean comes from the config, not the checkpoint
    x = torch.rand(2, 3, 4, 5)
    back = MeanShift((0.4488, 0.4371, 0.4040), sign=1)
    torch.testing.assert_close(back(shift(x)), x)
    torch.testing.assert_close(shift(x)[:, 1], x[:, 1] - 0.4371)
    assert shift.double()(x.double()).dtype == torch.float64


def test_mean_shift_rejects_bad_sign() -> None:
    with pytest.raises(ValueError, match="sign"):
        MeanShift((0.5,), sign=2)


def test_residual_block_formula() -> None:
    torch.manual_seed(0)
    block = ResidualBlockNoBN(num_feat=4, res_scale=0.1)
    x = torch.randn(1, 4, 6, 6)
    body = block.conv2(torch.relu(block.conv1(x)))
    torch.testing.assert_close(block(x), x + 0.1 * body)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in block.modules())


@pytest.mark.parametrize(("scale", "convs"), [(2, 1), (3, 1), (4, 2), (8, 3)])
def test_upsample_stages(scale: int, convs: int) -> None:
    up = Upsample(scale, num_feat=4)
    assert sum(isinstance(m, nn.Conv2d) for m in up) == convs
    assert up(torch.zeros(1, 4, 3, 5)).shape == (1, 4, 3 * scale, 5 * scale)


@pytest.mark.parametrize("scale", [0, 1, 5, 6, 2.0, True])
def test_upsample_unsupported_scale_names_it(scale: object) -> None:
    with pytest.raises(ValueError, match=r"scale") as info:
        Upsample(scale, num_feat=4)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(scale) in message or str(scale) in message
    assert "powers of two" in message and "3" in message


def test_edsr_unsupported_upscale_raises() -> None:
    with pytest.raises(ValueError, match="unsupported scale 5"):
        EDSR(upscale=5, **TINY)


def test_conv3x3_keeps_size() -> None:
    conv = conv3x3(3, 7)
    assert conv.bias is not None
    assert conv(torch.zeros(1, 3, 5, 4)).shape == (1, 7, 5, 4)

"""summary(): parameters and MACs per LR pixel, checked against hand-computed counts."""

from __future__ import annotations

import pytest
import torch
from rich.table import Table
from torch import nn

from srlab.models import EDSR
from srlab.models.complexity import NetworkComplexity, count_macs, summary, summary_table
from srlab.models.rrdbnet import RRDBNet

CONV64 = 9 * 64 * 64  # 36,864 MACs per output pixel of a 3x3 conv 64 -> 64


@pytest.mark.parametrize("lr_size", [8, 13])
def test_single_conv3x3(lr_size: int) -> None:
    s = summary(nn.Conv2d(64, 64, 3, padding=1), scale=1, lr_size=lr_size, channels=64)
    assert s.macs_per_lr_pixel == CONV64 == 36_864
    assert s.params == CONV64 + 64


def test_edsr_baseline_x2() -> None:
    # Per LR pixel: head 3 -> 64: 9 * 3 * 64 = 1,728; 16 blocks x 2 convs + the conv closing
    # the body = 33 x 36,864 = 1,216,512; upsampler conv 64 -> 256 at LR resolution
    # 9 * 64 * 256 = 147,456; conv_last 64 -> 3 at HR, 4 HR pixels per LR pixel: 4 x 1,728.
    expected = 1_728 + 33 * CONV64 + 147_456 + 4 * 1_728
    assert expected == 1_372_608
    s = summary(EDSR(num_feat=64, num_block=16, upscale=2), lr_size=16)
    assert (s.name, s.scale, s.params) == ("EDSR", 2, 1_369_859)
    assert s.macs_per_lr_pixel == expected


def expected_rrdb_macs(nf: int, nb: int, gc: int, scale: int, ch: int = 3) -> int:
    """MACs per LR pixel of RRDBNet, from the architecture (3x3 convs: 9 * in * out)."""
    rdb = sum(9 * (nf + j * gc) * gc for j in range(4)) + 9 * (nf + 4 * gc) * nf
    at_lr = 9 * ch * nf + nb * 3 * rdb + 9 * nf * nf  # conv_first, body, conv_body
    stages = [4**k * 9 * nf * nf for k in range(1, scale.bit_length())]  # conv_up1 at 2x, ...
    at_hr = scale**2 * (9 * nf * nf + 9 * nf * ch)  # conv_hr, conv_last
    return at_lr + sum(stages) + at_hr


def test_rrdbnet_x4_default_is_pinned() -> None:
    # Dense block (nf 64, gc 32): 9 * 32 * (64 + 96 + 128 + 160) + 9 * 192 * 64 = 239,616;
    # at LR: conv_first 1,728 + 23 x 3 x 239,616 = 16,533,504 + conv_body 36,864;
    # conv_up1 at 2x: 4 x 36,864 = 147,456; conv_up2 and conv_hr at 4x: 16 x 36,864 = 589,824
    # each; conv_last at 4x: 16 x 1,728 = 27,648. Total 17,926,848 (~73.4 GMACs for a 64x64 LR
    # input, ~1.03 TMACs for a 1280x720 output).
    expected = 1_728 + 16_533_504 + 36_864 + 147_456 + 2 * 589_824 + 27_648
    assert expected == 17_926_848 == expected_rrdb_macs(64, 23, 32, 4)
    s = summary(RRDBNet(), lr_size=4)  # per-pixel counts do not depend on lr_size
    assert (s.scale, s.params, s.macs_per_lr_pixel) == (4, 16_697_987, expected)
    assert s.macs_for_lr(64, 64) == expected * 4096
    assert s.macs_for_hr(720, 1280) == expected * 320 * 180


@pytest.mark.parametrize("scale", [2, 4])
def test_rrdbnet_small_matches_formula(scale: int) -> None:
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, upscale=scale)
    assert summary(net, lr_size=5).macs_per_lr_pixel == expected_rrdb_macs(8, 2, 4, scale)


def test_transposed_conv_grouped_conv_and_linear() -> None:
    # FSRCNN-style deconvolution x2: each of the 4 x 8 x 8 input elements is scattered through
    # a 9x9 kernel to 1 output channel: 4 * 81 = 324 MACs per LR pixel.
    deconv = nn.ConvTranspose2d(4, 1, 9, stride=2, padding=4, output_padding=1)
    assert summary(deconv, scale=2, lr_size=8, channels=4).macs_per_lr_pixel == 324
    # Grouped conv: each output sees in_ch / groups = 2 channels: 8 * 2 * 9 = 144.
    grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)
    assert summary(grouped, scale=1, lr_size=6, channels=8).macs_per_lr_pixel == 144
    # Linear: output elements x in_features, here 5 x 7 per call.
    macs, _ = count_macs(nn.Linear(7, 5), torch.rand(1, 7))
    assert macs == 35


def test_defaults_scale_inference_and_mode() -> None:
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    net.train()
    s = summary(net, lr_size=4)  # no upscale attribute: read from the output size
    assert (s.scale, s.macs_per_lr_pixel) == (2, 9 * 3 * 12)
    assert net.training  # restored
    with pytest.raises(ValueError, match="not scale 3"):
        summary(net, scale=3, lr_size=4)
    y_net = RRDBNet(num_in_ch=1, num_out_ch=1, num_feat=4, num_block=1, num_grow_ch=2, upscale=2)
    assert summary(y_net, lr_size=4).macs_per_lr_pixel == expected_rrdb_macs(4, 1, 2, 2, ch=1)


def test_str_and_table() -> None:
    s = NetworkComplexity(name="RRDBNet", scale=4, params=16_697_987, macs_per_lr_pixel=17_926_848)
    assert (
        str(s) == "RRDBNet x4: 16.70 M params, 17.93 M MACs/LR px (1032.6 G for a 1280x720 output)"
    )
    table = summary_table([s, nn.Conv2d(3, 3, 3, padding=1)], lr_size=4)
    assert isinstance(table, Table) and table.row_count == 2

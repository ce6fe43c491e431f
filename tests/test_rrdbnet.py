"""RRDBNet (ESRGAN generator): shapes, exact parameter counts, init, errors, config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate

from srlab.models.rrdbnet import RRDB, ResidualDenseBlock, RRDBNet

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# Default x4 (num_feat 64, growth 32, 23 blocks), conv params = 9 * in * out + out:
#   dense block: conv1 64->32 18,464 + conv2 96->32 27,680 + conv3 128->32 36,896
#                + conv4 160->32 46,112 + conv5 192->64 110,656           = 239,808
#   RRDB = 3 dense blocks = 719,424; body = 23 x 719,424               = 16,546,752
#   conv_first 3->64 1,792 + conv_body, conv_up1, conv_up2, conv_hr 4 x 36,928
#   + conv_last 64->3 1,731                                            =    151,235
#   total                                                              = 16,697,987
# x2 drops conv_up2: 16,697,987 - 36,928 = 16,661,059.
DEFAULT_PARAMS = {4: 16_697_987, 2: 16_661_059}


def expected_params(nf: int, nb: int, gc: int, scale: int, ch: int = 3) -> int:
    """Parameter count from the architecture, independently of the code under test."""

    def conv(cin: int, cout: int) -> int:
        return 9 * cin * cout + cout

    rdb = sum(conv(nf + j * gc, gc) for j in range(4)) + conv(nf + 4 * gc, nf)
    n_up = int(math.log2(scale))
    return conv(ch, nf) + nb * 3 * rdb + (2 + n_up) * conv(nf, nf) + conv(nf, ch)


@pytest.mark.parametrize("upscale", [4, 2])
def test_default_parameter_count_is_the_papers(upscale: int) -> None:
    with torch.device("meta"):  # shapes only: no memory, no 16.7 M random draws
        net = RRDBNet(upscale=upscale)
    assert count(net) == DEFAULT_PARAMS[upscale] == expected_params(64, 23, 32, upscale)


@pytest.mark.parametrize("upscale", [2, 4])
@pytest.mark.parametrize("size", [(7, 5), (1, 3)])
def test_shapes_on_odd_sizes(upscale: int, size: tuple[int, int]) -> None:
    net = RRDBNet(upscale=upscale, **TINY)
    h, w = size
    out = net(torch.rand(2, 3, h, w))
    assert out.shape == (2, 3, upscale * h, upscale * w)
    assert count(net) == expected_params(8, 1, 4, upscale)


def test_channels_and_attributes() -> None:
    net = RRDBNet(num_in_ch=1, num_out_ch=1, upscale=2, **TINY)
    assert (net.upscale, net.num_in_ch, net.num_out_ch) == (2, 1, 1)
    assert net(torch.rand(1, 1, 6, 4)).shape == (1, 1, 12, 8)


def test_basicsr_parameter_names() -> None:
    names = set(RRDBNet(num_feat=8, num_block=2, num_grow_ch=4).state_dict())
    for name in (
        "conv_first.weight",
        "body.1.rdb3.conv5.bias",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.bias",
    ):
        assert name in names
    assert not any(n.startswith("conv_up2.") for n in RRDBNet(upscale=2, **TINY).state_dict())


@pytest.mark.parametrize("upscale", [1, 3, 8, True])
def test_unsupported_scales_name_the_supported_ones(upscale: int) -> None:
    with pytest.raises(ValueError, match="supported scales: 2, 4"):
        RRDBNet(upscale=upscale, **TINY)


def test_dense_block_convs_start_at_a_tenth_of_kaiming() -> None:
    """BasicSR's default_init_weights(..., 0.1): std = 0.1 * sqrt(2 / fan_in), zero bias."""
    torch.manual_seed(0)
    rdb = ResidualDenseBlock(num_feat=64, num_grow_ch=32)
    for conv in (rdb.conv1, rdb.conv5):
        fan_in = conv.in_channels * 9
        assert conv.weight.std().item() == pytest.approx(0.1 * math.sqrt(2 / fan_in), rel=0.05)
        assert torch.count_nonzero(conv.bias) == 0


def test_blocks_are_residual_with_scale_0_2() -> None:
    block = RRDB(num_feat=8, num_grow_ch=4)
    for conv in block.modules():
        if isinstance(conv, torch.nn.Conv2d):
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.constant_(conv.bias, 1.0)
    x = torch.zeros(1, 8, 3, 3)
    # Each dense block outputs x + 0.2 * 1 (conv5 of zeros weights gives its bias, 1).
    # rdb1: 0.2, rdb2: 0.4, rdb3: 0.6; RRDB: x + 0.2 * 0.6 = 0.12.
    assert torch.allclose(block(x), torch.full_like(x, 0.12))


def test_backward_through_inplace_activations() -> None:
    net = RRDBNet(upscale=4, **TINY)
    net(torch.rand(1, 3, 4, 4)).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_config_builds_the_paper_model(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["model=rrdb", "scale=4"])
    with torch.device("meta"):
        task = instantiate(cfg.model, _convert_="all")
    assert isinstance(task.net, RRDBNet) and task.scale == 4
    assert count(task.net) == DEFAULT_PARAMS[4]
    optimizer = task.optimizer_factory(params=task.net.parameters())
    assert optimizer.defaults["lr"] == 2e-4 and optimizer.defaults["betas"] == (0.9, 0.99)
    scheduler = task.scheduler_factory(optimizer=optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingWarmRestarts)
    assert scheduler.T_0 == 250_000
    assert compose_config(tmp_path, ["model=rrdb", "scale=2"]).model.net.upscale == 2

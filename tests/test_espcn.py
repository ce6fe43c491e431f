"""ESPCN: the paper's layer sizes and count, the sub-pixel layout against numpy, init, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from torch import nn

from srlab.models import ESPCN


def _weights(net: nn.Module) -> int:
    return sum(p.numel() for name, p in net.named_parameters() if name.endswith("weight"))


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_paper_layer_sizes_and_count(upscale: int) -> None:
    net = ESPCN(upscale=upscale)
    # (f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3 with upscale² output maps (section 3.1).
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 64, (5, 5)),
        (64, 32, (3, 3)),
        (32, upscale**2, (3, 3)),
    ]
    assert _weights(net) == 25 * 64 + 9 * 64 * 32 + 9 * 32 * upscale**2
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 2


def test_x3_parameter_count() -> None:
    assert sum(p.numel() for p in ESPCN(upscale=3).parameters()) == 22_729


@pytest.mark.parametrize("upscale", [2, 3, 4])
def test_sub_pixel_layout_matches_a_numpy_periodic_shuffle(upscale: int) -> None:
    """Output pixel (r*y + i, r*x + j) of channel c is LR-grid map c*r² + i*r + j at (y, x)."""
    torch.manual_seed(0)
    net = ESPCN(num_in_ch=3, upscale=upscale).eval()
    lr = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        maps = net.last_part[0](net.first_part(lr)).numpy()
        out = net(lr).numpy()
    b, _, h, w = maps.shape
    r = upscale
    expected = (
        maps.reshape(b, 3, r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(b, 3, h * r, w * r)
    )
    np.testing.assert_array_equal(out, expected)


def test_odd_sizes_and_channels() -> None:
    net = ESPCN(num_in_ch=3, num_out_ch=1, upscale=3)
    assert net(torch.rand(1, 3, 7, 5)).shape == (1, 1, 21, 15)


def test_init_and_learning_rate_multiplier() -> None:
    torch.manual_seed(0)
    net = ESPCN(upscale=3)
    first = net.first_part[0].weight
    assert first.std().item() == pytest.approx((2 / (64 * 25)) ** 0.5, rel=0.1)
    assert net.last_part[0].weight.std().item() == pytest.approx(1e-3, rel=0.1)
    assert all(not m.bias.any() for m in net.modules() if isinstance(m, nn.Conv2d))
    assert net.lr_multipliers() == {"last_part": 0.1}


def test_state_dict_uses_the_yjn870_port_names() -> None:
    assert set(ESPCN().state_dict()) == {
        "first_part.0.weight",
        "first_part.0.bias",
        "first_part.2.weight",
        "first_part.2.bias",
        "last_part.0.weight",
        "last_part.0.bias",
    }


def test_unknown_activation_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="activation='gelu' is not one of"):
        ESPCN(activation="gelu")


def test_config_builds_the_paper_network_with_adam(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["model=espcn", "scale=3"])
    task = instantiate(cfg.model, _convert_="all")
    assert type(task.net) is ESPCN and task.net.upscale == 3 and task.net.num_in_ch == 1
    optimizer = task.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([1e-4, 1e-3])

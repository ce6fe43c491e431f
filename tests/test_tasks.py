"""Task mechanics: per-layer learning rates, VDSR's adjustable clipping, channel handling."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from srlab.models import EDSR
from srlab.models.channels import super_resolve
from srlab.tasks import RegressionTask
from srlab.tasks.optim import parameter_groups


class _TwoConv(nn.Module):
    """A toy 'network' that trains its last layer 10x slower, like SRCNN."""

    upscale = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)

    def lr_multipliers(self) -> dict[str, float]:
        return {"conv2": 0.1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def _task(net: nn.Module, **kwargs) -> RegressionTask:
    optimizer = functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9)
    return RegressionTask(net=net, loss=nn.MSELoss(), optimizer=optimizer, **kwargs)


def test_lr_multipliers_become_parameter_groups() -> None:
    wrapper = nn.Module()
    wrapper.net = _TwoConv()  # multipliers of submodules are found under their prefix
    groups = parameter_groups(wrapper, base_lr=0.1)
    by_mult = {g["lr_mult"]: g for g in groups}
    assert by_mult[0.1]["lr"] == pytest.approx(0.01) and by_mult[1.0]["lr"] == 0.1
    assert {id(p) for p in by_mult[0.1]["params"]} == {
        id(p) for p in wrapper.net.conv2.parameters()
    }

    optimizer = _task(_TwoConv()).configure_optimizers()["optimizer"]
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([0.01, 0.1])


def test_unknown_multiplier_prefix_is_an_error() -> None:
    net = _TwoConv()
    net.lr_multipliers = lambda: {"conv3": 0.1}
    with pytest.raises(ValueError, match="conv3"):
        parameter_groups(net, base_lr=0.1)


def test_adjustable_clip_bounds_gradients_by_theta_over_lr() -> None:
    task = _task(_TwoConv(), adjustable_clip=0.01)
    optimizer = task.configure_optimizers()["optimizer"]
    for param in task.parameters():
        param.grad = torch.full_like(param, 5.0)
    task.configure_gradient_clipping(optimizer)
    for group in optimizer.param_groups:
        bound = 0.01 / group["lr"]  # 0.1 for lr 0.1, 1.0 for the slow layer (lr 0.01)
        assert all(p.grad.abs().max().item() == pytest.approx(bound) for p in group["params"])


def test_rgb_network_on_gray_image_returns_gray() -> None:
    net = EDSR(num_feat=8, num_block=1, upscale=2)
    gray = torch.rand(1, 1, 10, 12)
    out = super_resolve(net, gray)
    assert out.shape == (1, 1, 20, 24)
    rgb_out = net(gray.expand(-1, 3, -1, -1))
    expected = (65.481 * rgb_out[:, 0] + 128.553 * rgb_out[:, 1] + 24.966 * rgb_out[:, 2]) / 219
    torch.testing.assert_close(out[:, 0], expected)


def test_y_network_trains_on_y() -> None:
    from srlab.imaging import rgb_to_y
    from srlab.models import SRCNN

    task = _task(SRCNN(upscale=2))
    torch.manual_seed(0)
    batch = {"lr": torch.rand(2, 3, 8, 8), "hr": torch.rand(2, 3, 16, 16), "name": ["a", "b"]}
    task.log = lambda *args, **kwargs: None  # not attached to a Trainer
    loss = task.training_step(batch, 0)
    expected = nn.functional.mse_loss(task.net(rgb_to_y(batch["lr"])), rgb_to_y(batch["hr"]))
    torch.testing.assert_close(loss, expected)


def test_multiscale_batch_uses_its_scale() -> None:
    from srlab.models import VDSR

    task = _task(VDSR(num_layers=3, num_feat=4, upscale=2))
    task.log = lambda *args, **kwargs: None
    batch = {"lr": torch.rand(2, 3, 6, 6), "hr": torch.rand(2, 3, 18, 18), "scale": [3, 3]}
    loss = task.training_step(batch, 0)  # an x3 batch on an x2-default VDSR: sizes agree
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="x2 only"):
        super_resolve(EDSR(num_feat=4, num_block=1, upscale=2), batch["lr"], scale=3)

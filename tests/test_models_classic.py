"""SRCNN, FSRCNN and VDSR: exact counts, sizes at every scale, padding, residual, init, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import compose_config
from hydra.utils import instantiate
from torch import nn

from srlab.imaging.imresize import imresize
from srlab.models.fsrcnn import FSRCNN
from srlab.models.srcnn import SRCNN
from srlab.models.vdsr import VDSR
from srlab.tasks.optim import parameter_groups

SCALES = (2, 3, 4)
ODD_LR = (13, 17)  # odd and non-square: catches off-by-one sizes and swapped H/W


def n_weights(net: nn.Module) -> int:
    """Conv and deconv weights only (4-D tensors): no biases, no PReLU slopes."""
    return sum(p.numel() for p in net.parameters() if p.ndim == 4)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def build(name: str, channels: int, upscale: int) -> nn.Module:
    if name == "srcnn":
        return SRCNN(num_in_ch=channels, upscale=upscale)
    if name == "fsrcnn":
        return FSRCNN(num_in_ch=channels, upscale=upscale)
    return VDSR(num_in_ch=channels, upscale=upscale)


# -- parameter counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_sizes", "weights"),
    [((9, 5, 5), 57_184), ((9, 1, 5), 8_032), ((9, 3, 5), 24_416)],
)
def test_srcnn_counts(kernel_sizes: tuple[int, int, int], weights: int) -> None:
    net = SRCNN(kernel_sizes=kernel_sizes)
    f1, f2, f3 = kernel_sizes
    assert weights == f1 * f1 * 64 + f2 * f2 * 64 * 32 + f3 * f3 * 32
    assert n_weights(net) == weights
    assert n_params(net) == weights + 64 + 32 + 1


def test_srcnn_rgb_count() -> None:
    net = SRCNN(num_in_ch=3)
    assert net.num_out_ch == 3
    assert n_weights(net) == 81 * 3 * 64 + 25 * 64 * 32 + 25 * 32 * 3 == 69_152


@pytest.mark.parametrize("upscale", SCALES)
def test_fsrcnn_counts_do_not_depend_on_scale(upscale: int) -> None:
    net = FSRCNN(upscale=upscale)
    assert n_weights(net) == 25 * 56 + 56 * 12 + 4 * 9 * 12 * 12 + 12 * 56 + 81 * 56 == 12_464
    assert n_params(net) == 12_464 + 173 + 172
    small = FSRCNN(upscale=upscale, d=32, s=5, m=1)  # FSRCNN-s
    assert n_weights(small) == 3_937
    assert n_params(small) == 4_086


def test_vdsr_counts() -> None:
    net = VDSR()
    assert n_weights(net) == 64 * 9 + 18 * 64 * 64 * 9 + 64 * 9 == 664_704
    assert n_params(net) == 664_704 + 19 * 64 + 1 == 665_921


# -- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("upscale", SCALES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ["srcnn", "fsrcnn", "vdsr"])
def test_output_is_exactly_scale_times_input(name: str, channels: int, upscale: int) -> None:
    net = build(name, channels, upscale)
    assert net.upscale == upscale and net.num_in_ch == channels
    h, w = ODD_LR
    with torch.no_grad():
        sr = net(torch.rand(2, channels, h, w))
    assert sr.shape == (2, channels, upscale * h, upscale * w)
    assert torch.isfinite(sr).all()


@pytest.mark.parametrize("name", ["srcnn", "fsrcnn", "vdsr"])
def test_one_pixel_input(name: str) -> None:
    with torch.no_grad():
        assert build(name, 1, 3)(torch.rand(1, 1, 1, 1)).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("upscale", [1, *SCALES, 5])
def test_fsrcnn_deconvolution_output_size(upscale: int) -> None:
    net = FSRCNN(upscale=upscale, num_out_ch=3)
    deconv = net.last_part
    assert isinstance(deconv, nn.ConvTranspose2d)
    assert deconv.stride == (upscale, upscale) and deconv.padding == (4, 4)
    assert deconv.output_padding == (upscale - 1, upscale - 1)
    with torch.no_grad():
        out = deconv(torch.zeros(1, 56, *ODD_LR))
    assert out.shape == (1, 3, upscale * ODD_LR[0], upscale * ODD_LR[1])


# -- SRCNN: bicubic input and replicate padding --------------------------------------------------


def _srcnn_reference(net: SRCNN, lr: torch.Tensor, mode: str) -> torch.Tensor:
    """Bicubic upscale, then per conv: pad by k//2 with ``mode`` and a padding-free conv."""
    x = imresize(lr, scale=net.upscale)
    for i, conv in enumerate((net.conv1, net.conv2, net.conv3)):
        p = conv.kernel_size[0] // 2
        x = F.conv2d(F.pad(x, (p, p, p, p), mode=mode), conv.weight, conv.bias)
        if i < 2:
            x = torch.relu(x)
    return x


def _randomize(net: nn.Module, std: float = 0.05) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, std)


@pytest.mark.parametrize("upscale", SCALES)
def test_srcnn_pads_by_replicating_borders(upscale: int) -> None:
    net = SRCNN(upscale=upscale, num_in_ch=3)
    _randomize(net)
    lr = torch.rand(1, 3, *ODD_LR)
    with torch.no_grad():
        torch.testing.assert_close(net(lr), _srcnn_reference(net, lr, "replicate"))
        # and not by zeros: the borders differ
        assert not torch.allclose(net(lr), _srcnn_reference(net, lr, "constant"))


def test_srcnn_zero_padding_option() -> None:
    net = SRCNN(kernel_sizes=(9, 1, 5), padding_mode="zeros")
    _randomize(net)
    lr = torch.rand(1, 1, *ODD_LR)
    with torch.no_grad():
        torch.testing.assert_close(net(lr), _srcnn_reference(net, lr, "constant"))


def test_srcnn_constant_image_stays_constant() -> None:
    """With replicate padding no border effect exists: a flat image gives a flat output."""
    net = SRCNN(upscale=3)
    _randomize(net)
    with torch.no_grad():
        sr = net(torch.full((1, 1, 7, 5), 0.4))
    torch.testing.assert_close(sr, sr[..., :1, :1].expand_as(sr))


# -- VDSR: global residual and multi-scale -------------------------------------------------------


@pytest.mark.parametrize("upscale", SCALES)
@pytest.mark.parametrize("channels", [1, 3])
def test_vdsr_zero_last_layer_is_bicubic(channels: int, upscale: int) -> None:
    net = VDSR(num_in_ch=channels, upscale=upscale)
    last = net.body[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    lr = torch.rand(2, channels, *ODD_LR)
    with torch.no_grad():
        assert torch.equal(net(lr), imresize(lr, scale=upscale))


def test_vdsr_scale_argument_overrides_upscale() -> None:
    torch.manual_seed(0)
    net2 = VDSR(upscale=2, num_layers=5, num_feat=8)
    net3 = VDSR(upscale=3, num_layers=5, num_feat=8)
    net3.load_state_dict(net2.state_dict())  # one set of weights serves every scale
    lr = torch.rand(1, 1, *ODD_LR)
    with torch.no_grad():
        sr = net2(lr, scale=3)
        assert sr.shape == (1, 1, 3 * ODD_LR[0], 3 * ODD_LR[1])
        torch.testing.assert_close(sr, net3(lr))
        assert net2(lr, scale=4).shape[-2:] == (4 * ODD_LR[0], 4 * ODD_LR[1])
        assert net2(lr).shape[-2:] == (2 * ODD_LR[0], 2 * ODD_LR[1])
    with pytest.raises(ValueError, match="upscale"):
        net2(lr, scale=0)


def test_vdsr_parameters_are_ordered_weight_bias_pairs() -> None:
    """The authors' 20 (weight, bias) pairs map onto ``net.parameters()`` in order."""
    net = VDSR()
    params = list(net.parameters())
    assert len(params) == 40
    shapes = [tuple(p.shape) for p in params]
    assert shapes[0] == (64, 1, 3, 3) and shapes[1] == (64,)
    assert shapes[-2] == (1, 64, 3, 3) and shapes[-1] == (1,)
    assert all(len(s) == 4 for s in shapes[::2]) and all(len(s) == 1 for s in shapes[1::2])
    keys = list(net.state_dict())
    assert keys[:2] == ["body.0.weight", "body.0.bias"] and keys[-1] == "body.38.bias"


# -- initialization ------------------------------------------------------------------------------


def _close_std(t: torch.Tensor, std: float, rel: float = 0.05) -> bool:
    return abs(t.float().std().item() - std) < rel * std and abs(t.mean().item()) < 0.1 * std


def test_srcnn_init_is_gaussian_1e3_with_zero_biases() -> None:
    torch.manual_seed(0)
    net = SRCNN()
    assert _close_std(net.conv2.weight, 1e-3)  # 51,200 samples
    assert _close_std(torch.cat([c.weight.flatten() for c in (net.conv1, net.conv3)]), 1e-3)
    for conv in (net.conv1, net.conv2, net.conv3):
        assert not conv.bias.any()


def test_fsrcnn_init() -> None:
    torch.manual_seed(0)
    net = FSRCNN()
    first = net.first_part[0]
    mapping = torch.cat([net.mid_part[i].weight.flatten() for i in (2, 4, 6, 8)])
    assert _close_std(first.weight, math.sqrt(2 / (25 * 56)))  # He, fan-out
    assert _close_std(mapping, math.sqrt(2 / (9 * 12)), rel=0.1)  # 5,184 samples
    assert _close_std(net.last_part.weight, 1e-3)
    for module in net.modules():
        if isinstance(module, nn.PReLU):
            assert torch.equal(module.weight, torch.full_like(module.weight, 0.25))
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            assert not module.bias.any()


def test_vdsr_init_is_he_fan_out() -> None:
    torch.manual_seed(0)
    net = VDSR()
    hidden = torch.cat([net.body[i].weight.flatten() for i in range(2, 37, 2)])
    assert _close_std(hidden, math.sqrt(2 / (9 * 64)), rel=0.02)
    assert _close_std(net.body[-1].weight, math.sqrt(2 / 9), rel=0.15)  # 576 samples
    assert all(not m.bias.any() for m in net.body if isinstance(m, nn.Conv2d))


# -- layer names and learning-rate multipliers ---------------------------------------------------


def test_fsrcnn_state_dict_layout() -> None:
    """yjn870/FSRCNN-pytorch's key names, so its weights load as they are."""
    keys = set(FSRCNN(m=4).state_dict())
    expected = {"first_part.0.weight", "first_part.0.bias", "first_part.1.weight"}
    expected |= {f"mid_part.{i}.weight" for i in range(12)}
    expected |= {f"mid_part.{i}.bias" for i in range(0, 12, 2)}
    expected |= {"last_part.weight", "last_part.bias"}
    assert keys == expected


@pytest.mark.parametrize(
    ("cls", "slow"),
    [(SRCNN, {"conv3.weight", "conv3.bias"}), (FSRCNN, {"last_part.weight", "last_part.bias"})],
    ids=["srcnn", "fsrcnn"],
)
def test_lr_multipliers_name_real_parameters(cls: type, slow: set[str]) -> None:
    net = cls()
    (prefix,) = net.lr_multipliers()
    names = {n for n, _ in net.named_parameters()}
    assert {n for n in names if n == prefix or n.startswith(prefix + ".")} == slow
    groups = parameter_groups(net, base_lr=1e-3)
    assert sorted(g["lr"] for g in groups) == pytest.approx([1e-4, 1e-3])
    assert sum(len(g["params"]) for g in groups) == len(names)  # a partition of the parameters
    slow_group = next(g for g in groups if g["lr"] < 1e-3)
    assert {id(p) for p in slow_group["params"]} == {
        id(p) for n, p in net.named_parameters() if n in slow
    }


# -- argument checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SRCNN, FSRCNN, VDSR])
@pytest.mark.parametrize("upscale", [0, -2, 2.0, True])
def test_bad_upscale_is_rejected(cls: type, upscale: object) -> None:
    with pytest.raises(ValueError, match="upscale"):
        cls(upscale=upscale)


def test_srcnn_rejects_even_kernels() -> None:
    with pytest.raises(ValueError, match="odd"):
        SRCNN(kernel_sizes=(9, 4, 5))
    with pytest.raises(ValueError, match="odd"):
        SRCNN(kernel_sizes=(9, 5))


# -- configs: compose, build, one training step -------------------------------------------------

# Trainable parameters per config (Y channel), independent of the scale.
CONFIG_PARAMS = {"srcnn": 57_281, "fsrcnn": 12_809, "vdsr": 665_921}
CONFIG_CLASSES = {"srcnn": SRCNN, "fsrcnn": FSRCNN, "vdsr": VDSR}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("model", ["srcnn", "fsrcnn", "vdsr"])
def test_config_builds_and_trains_one_step(tmp_path: Path, model: str, scale: int) -> None:
    cfg = compose_config(tmp_path, [f"model={model}", f"scale={scale}"])
    task = instantiate(cfg.model, _convert_="all")
    net = task.net
    assert type(net) is CONFIG_CLASSES[model]
    assert net.upscale == scale and task.scale == scale and net.num_in_ch == 1
    assert n_params(net) == CONFIG_PARAMS[model]
    assert isinstance(task.loss, nn.MSELoss)

    optimizer = task.configure_optimizers()["optimizer"]
    # SRCNN and VDSR train as their papers (SGD, momentum 0.9); FSRCNN as modern ports (Adam:
    # its paper's fixed-rate SGD is experiment=fsrcnn_x2_general100).
    if model == "fsrcnn":
        assert isinstance(optimizer, torch.optim.Adam)
    else:
        assert isinstance(optimizer, torch.optim.SGD)
        assert optimizer.defaults["momentum"] == 0.9
    base_lr = cfg.model.optimizer.lr
    # The task turns net.lr_multipliers() into parameter groups (the paper's slower last layer).
    expected = [0.1 * base_lr, base_lr] if hasattr(net, "lr_multipliers") else [base_lr]
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx(expected)

    # RGB batch, as the data module yields: the Y network runs through srlab's channel adapter.
    torch.manual_seed(0)
    lr = torch.rand(2, 3, 6, 5)
    hr = torch.rand(2, 3, 6 * scale, 5 * scale)
    before = [p.detach().clone() for p in net.parameters()]
    sr = task(lr)
    assert sr.shape == hr.shape
    loss = task.loss(sr, hr)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    changed = [not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True)]
    assert any(changed)


def test_vdsr_config_schedule(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["model=vdsr"])
    optimizer = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    scheduler = instantiate(cfg.model.scheduler)(optimizer=optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert scheduler.step_size == 9_960 // 4 and scheduler.gamma == 0.1
    assert cfg.model.optimizer.weight_decay == 1e-4 and cfg.model.optimizer.lr == 0.1

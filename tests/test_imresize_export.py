"""Networks with the MATLAB-bicubic ``imresize`` in their forward export with dynamic sizes.

The default model, ``edsr_tiny`` (``BicubicResidual``: MATLAB-bicubic upscale + EDSR), goes
through the project's own export path (``srlab.app.export.export``, what ``src/export.py`` runs)
to ONNX and TorchScript with dynamic batch, height and width; the written files are then run
on their own (ONNX Runtime, ``torch.jit.load``) at two sizes other than the example's and
the parity check's, and compared with the PyTorch network. SRCNN, VDSR and the bicubic
baseline trace too, and a traced ``imresize`` follows the input size without warnings.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from torch import nn

from srlab.app.export import export, export_torchscript, run_exported
from srlab.imaging import imresize
from srlab.models import SRCNN, VDSR
from srlab.models.bicubic import Bicubic

# The tests load TorchScript files as users do; PyTorch now warns that torch.jit is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit.*")

# Neither the example's size ([2, 3, 24, 24]) nor the parity check's ([1, 3, 17, 23]): odd,
# non-square, a batch of 3, and an image smaller than the bicubic kernel's 4 pixels.
CHECK_SHAPES = [(3, 3, 20, 31), (1, 3, 2, 5)]


def edsr_tiny(tmp_path: Path, scale: int) -> tuple[nn.Module, Path]:
    """The network of ``model=edsr_tiny scale=<scale>`` (conf/model/edsr_tiny.yaml) with
    random weights everywhere, the last conv too (``zero_init_last`` zeroes it, and the
    residual branch must count), and the state dict file ``ckpt=`` loads them from."""
    cfg = compose_config(tmp_path, ["model=edsr_tiny", f"scale={scale}"], config_name="export")
    net = instantiate(cfg.model.net, _convert_="all")
    torch.manual_seed(scale)
    with torch.no_grad():
        for param in net.parameters():
            param.copy_(torch.randn_like(param) * 0.05)
    path = tmp_path / f"edsr_tiny_x{scale}.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


@pytest.mark.parametrize(
    ("fmt", "method", "scale"),
    [
        ("onnx", "onnx.exporter=dynamo", 4),
        ("onnx", "onnx.exporter=legacy", 3),
        ("torchscript", "torchscript.method=trace", 4),
        ("torchscript", "torchscript.method=trace", 3),
    ],
)
def test_edsr_tiny_exports_with_dynamic_sizes(
    tmp_path: Path, fmt: str, method: str, scale: int
) -> None:
    net, weights = edsr_tiny(tmp_path, scale)
    output = tmp_path / f"edsr_tiny.{fmt}"
    overrides = [
        "model=edsr_tiny",
        f"scale={scale}",
        f"ckpt_path={weights}",
        f"format={fmt}",
        method,
        f"output={output}",
        "input_size=[24,24]",
        "parity.size=[17,23]",
    ]
    result = export(compose_config(tmp_path, overrides, config_name="export"))
    assert result.ok and result.path == output and result.parity_shape == (1, 3, 17, 23)

    # The file on its own, at sizes it was neither traced with nor checked at by export().
    if fmt == "onnx":
        graph_input = onnx.load(str(output)).graph.input[0]
        dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    else:
        module = torch.jit.load(str(output))
    generator = torch.Generator().manual_seed(1)
    for shape in CHECK_SHAPES:
        lr = torch.rand(shape, generator=generator)
        with torch.no_grad():
            expected = net(lr).numpy()
        if fmt == "onnx":
            (got,) = session.run(None, {"lr": lr.numpy()})
        else:
            got = module(lr).detach().numpy()
        assert got.shape == (shape[0], 3, scale * shape[2], scale * shape[3])
        assert np.abs(got - expected).max() < 1e-4, shape


@pytest.mark.parametrize(
    "net",
    [Bicubic(upscale=2), SRCNN(upscale=3), VDSR(upscale=2, num_feat=8, num_layers=3)],
    ids=["bicubic", "srcnn", "vdsr"],
)
def test_networks_with_bicubic_inside_trace_with_dynamic_sizes(
    tmp_path: Path, net: nn.Module
) -> None:
    net.eval()
    channels = getattr(net, "num_in_ch", 3)
    path = tmp_path / "net.pt"
    export_torchscript(net, path, torch.rand(2, channels, 12, 14))
    for shape in [(1, channels, 9, 16), (3, channels, 1, 3)]:
        lr = torch.rand(shape)
        with torch.no_grad():
            expected = net(lr)
        torch.testing.assert_close(run_exported(path, "torchscript", lr), expected)


def _upscale_by_size(x: torch.Tensor) -> torch.Tensor:
    height, width = x.shape[-2:]
    return imresize(x, size=(3 * height, 2 * width))  # the networks' call, two factors


def _shrink(x: torch.Tensor) -> torch.Tensor:
    return imresize(x, scale=0.37)


@pytest.mark.parametrize("fn", [_upscale_by_size, _shrink], ids=["upscale", "shrink"])
def test_traced_imresize_follows_the_size(fn) -> None:
    with warnings.catch_warnings():
        # A TracerWarning would mean a size was turned into a constant of the trace.
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(fn, torch.rand(2, 1, 10, 12), check_trace=False)
    for shape in [(1, 1, 7, 19), (3, 2, 25, 4)]:
        x = torch.rand(shape)
        torch.testing.assert_close(traced(x), fn(x), rtol=0, atol=1e-6)

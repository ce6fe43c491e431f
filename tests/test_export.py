"""src/export.py: ONNX and TorchScript exports of EDSR-baseline match eager PyTorch at sizes
other than the one they were traced with; networks that cannot be exported say what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import compose_config

from srlab.app.export import ExportError, _require, export
from srlab.errors import SRLabError
from srlab.imaging import imresize
from srlab.models import EDSR
from srlab.models.rrdbnet import RRDBNet

# The tests load TorchScript files as users do; PyTorch now warns that torch.jit is deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit.*")


@pytest.fixture(scope="module")
def edsr_baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[EDSR, Path]:
    """EDSR-baseline x2 of random weights, and the state dict file it was saved to."""
    torch.manual_seed(0)
    net = EDSR(num_feat=64, num_block=16, upscale=2).eval()
    path = tmp_path_factory.mktemp("weights") / "edsr_baseline_x2.pth"
    torch.save(net.state_dict(), path)
    return net, path


def export_cfg(tmp_path: Path, *overrides: str):
    """The config of `python src/export.py ...` writing into ``tmp_path``; small example
    and parity sizes keep the test fast."""
    return compose_config(
        tmp_path,
        ["scale=2", "input_size=[24,24]", "parity.size=[17,23]", *overrides],
        config_name="export",
    )


@pytest.mark.parametrize(
    ("fmt", "method"),
    [
        ("onnx", "onnx.exporter=dynamo"),
        ("onnx", "onnx.exporter=legacy"),
        ("torchscript", "torchscript.method=trace"),
    ],
)
def test_edsr_baseline_export_matches_eager(
    tmp_path: Path, edsr_baseline: tuple[EDSR, Path], fmt: str, method: str
) -> None:
    net, weights = edsr_baseline
    output = tmp_path / f"edsr.{fmt}"
    result = export(
        export_cfg(
            tmp_path,
            "model=edsr_baseline",
            f"ckpt_path={weights}",
            f"format={fmt}",
            method,
            f"output={output}",
        )
    )
    assert result.ok and result.max_abs_diff < 1e-4 and result.path == output
    assert result.parity_shape == (1, 3, 17, 23)

    # Independently of the library: another batch and size than both example and parity input.
    lr = torch.rand(3, 3, 20, 31, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = net(lr).numpy()
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"lr": lr.numpy()})
        model = onnx.load(str(output))
        dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        assert {p.key: p.value for p in model.metadata_props}["srlab.scale"] == "2"
    else:
        got = torch.jit.load(str(output))(lr).detach().numpy()
    assert got.shape == (3, 3, 40, 62)
    assert np.abs(got - expected).max() < 1e-4


def test_gan_lightning_checkpoint_exports_its_generator(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tiny = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    generator = RRDBNet(upscale=4, **tiny).eval()
    task_state = {f"net.{k}": v for k, v in generator.state_dict().items()}
    task_state["discriminator.conv0_0.weight"] = torch.zeros(8, 3, 3, 3)
    ckpt = {"state_dict": task_state, "pytorch-lightning_version": "2.6.0", "global_step": 10}
    torch.save(ckpt, tmp_path / "last.ckpt")
    result = export(
        export_cfg(
            tmp_path,
            "model=esrgan",
            "scale=4",
            f"ckpt_path={tmp_path / 'last.ckpt'}",
            "format=torchscript",
            *(f"model.net.{k}={v}" for k, v in tiny.items()),
        )
    )
    assert result.ok and result.path == tmp_path / "esrgan_x4.pt"
    lr = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(result.path))(lr), generator(lr))


def test_network_with_matlab_bicubic_inside_exports_with_dynamic_sizes(tmp_path: Path) -> None:
    for fmt in ("torchscript", "onnx"):
        output = tmp_path / f"bicubic.{fmt}"
        result = export(export_cfg(tmp_path, "model=bicubic", f"format={fmt}", f"output={output}"))
        assert result.ok and result.parity_shape == (1, 3, 17, 23)
    result = export(
        export_cfg(tmp_path, "model=bicubic", "format=onnx", "dynamic=false", "input_size=[10,12]")
    )
    assert result.ok and result.parity_shape == (2, 3, 10, 12)
    # Tracing ran imresize on the tracer's tensors: nothing of them may stay behind.
    image = torch.rand(1, 3, 10, 12)
    assert imresize(image, size=(20, 24)).shape == (1, 3, 20, 24)


def test_bad_options_and_missing_packages_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SRLabError, match="format='tflite'"):
        export(export_cfg(tmp_path, "model=bicubic", "format=tflite"))
    with pytest.raises(SRLabError, match="batch >= 2"):
        export(export_cfg(tmp_path, "model=bicubic", "batch=1"))
    with pytest.raises(ExportError, match=r"pip install -e '\.\[export\]'"):
        _require("onnx", "surely_not_an_installed_module")


def test_safetensors_export_alone_rebuilds_the_network(
    tmp_path: Path, edsr_baseline: tuple[EDSR, Path]
) -> None:
    """`src/export.py format=safetensors`, then `src/eval.py ckpt_path=<it>` with no model=."""
    from safetensors import safe_open

    from srlab.app.network import build_network

    net, weights = edsr_baseline
    result = export(
        export_cfg(tmp_path, "model=edsr_baseline", f"ckpt_path={weights}", "format=safetensors")
    )
    assert result.ok and result.max_abs_diff == 0
    assert result.path == tmp_path / "edsr_baseline_x2.safetensors"
    with safe_open(str(result.path), framework="pt") as file:  # tensors only: no pickle
        assert set(file.keys()) == set(net.state_dict())
    network = build_network(
        compose_config(tmp_path, [f"ckpt_path={result.path}"], config_name="eval")
    )
    assert (network.name, network.scale) == ("edsr_baseline", 2)
    lr = torch.rand(1, 3, 13, 17)
    with torch.no_grad():
        torch.testing.assert_close(network.net(lr), net(lr), atol=0, rtol=0)

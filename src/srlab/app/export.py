"""Export a network to ONNX, TorchScript or safetensors and check it against eager PyTorch.

The library behind ``src/export.py``::

    python src/export.py ckpt_path=<checkpoint> format=onnx output=edsr.onnx

The exported graph is the bare network of ``cfg.model.net`` (for a GAN, its generator): input
``lr`` ``[B, num_in_ch, H, W]`` float32 in ``[0, 1]``, output ``sr``
``[B, num_out_ch, scale*H, scale*W]``, not clamped. Batch, height and width are dynamic by
default. After writing the file, the export is run (ONNX Runtime for ONNX, ``torch.jit.load``
for TorchScript) on a random input of another size than the one it was traced with, so an
export that silently baked in the example's size fails here rather than in production, and the
largest absolute difference to eager PyTorch is printed.

ONNX uses ``torch.onnx.export(..., dynamo=True)`` by default: the exporter that PyTorch makes
the default since 2.9 and keeps developing (the TorchScript-based one, ``dynamo=False``, is
deprecated). It needs ``onnxscript``, and it checks the dynamic dimensions symbolically, so a
network that cannot run at every size fails at export with a reason instead of producing a
file that is wrong at other sizes. ``onnx.exporter=legacy`` selects the old exporter (faster
to export, no ``onnxscript``) while it lasts.

Networks that compute the MATLAB-bicubic upscale inside their forward (SRCNN, VDSR, the
bicubic baseline, the default ``edsr_tiny``) export with dynamic sizes too: ``imresize`` is
plain torch. A network that computes a size in Python can still fix the example's size; the
parity check then fails, and ``dynamic=false input_size=[H,W]`` exports it for one size
(the window-attention transformers: SwinIR, HAT, DAT build their attention masks in Python).

``format=safetensors`` writes the weights (no pickle) with the model config and scale in the
file's metadata: ``src/eval.py`` / ``src/infer.py ckpt_path=<file>.safetensors`` rebuild the
network from it alone, as from a checkpoint; the parity check rebuilds it so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch import nn

from srlab.app.network import build_network
from srlab.errors import ConfigError, SRLabError
from srlab.weights.safetensors_file import (
    read_safetensors,
    stored_model_metadata,
    write_safetensors,
)

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
ONNX_EXPORTERS = ("dynamo", "legacy")
TORCHSCRIPT_METHODS = ("trace", "script")

_INSTALL_HINT = (
    "install the export extra: pip install -e '.[export]' (onnx, onnxscript, onnxruntime)"
)
_FIXED_SIZE_HINT = (
    "A network that computes sizes in Python may export only for one input size: "
    "dynamic=false input_size=[H,W] (the LR size of the images it will see)"
)
_RUNS_HINT = "Check that the network runs eagerly on an input of batch x input_size"


class ExportError(SRLabError):
    """The network could not be exported, or the export does not match eager PyTorch."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how (the keys of ``conf/export.yaml``).

    Args:
        format: ``onnx`` or ``torchscript``.
        dynamic: any batch, height and width; false fixes the export to ``batch`` x
            ``input_size``.
        input_size: LR ``(height, width)`` of the example input the network is traced with.
        batch: batch of the example input. At least 2 with ``dynamic``: ``torch.export``
            treats a dimension of size 1 as the constant 1.
        onnx_exporter: ``dynamo`` (``torch.export`` + onnxscript) or ``legacy`` (TorchScript).
        opset: ONNX opset; None: the exporter's default.
        torchscript_method: ``trace`` (records the operations run on the example) or
            ``script`` (compiles the Python source; srlab's networks do not compile).
        parity_size: LR ``(height, width)`` of the parity check's random input; it differs
            from ``input_size`` on purpose (ignored when not ``dynamic``).
        atol: the largest absolute difference to eager PyTorch that passes.
        seed: seed of the random example and parity inputs.
    """

    format: str = "onnx"
    dynamic: bool = True
    input_size: tuple[int, int] = (64, 64)
    batch: int = 2
    onnx_exporter: str = "dynamo"
    opset: int | None = None
    torchscript_method: str = "trace"
    parity_size: tuple[int, int] = (37, 53)
    atol: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"format={self.format!r}: use {' or '.join(FORMATS)}")
        if self.onnx_exporter not in ONNX_EXPORTERS:
            raise ConfigError(
                f"onnx.exporter={self.onnx_exporter!r}: use {' or '.join(ONNX_EXPORTERS)}"
            )
        if self.torchscript_method not in TORCHSCRIPT_METHODS:
            raise ConfigError(
                f"torchscript.method={self.torchscript_method!r}: use "
                f"{' or '.join(TORCHSCRIPT_METHODS)}"
            )
        for key, size in (("input_size", self.input_size), ("parity.size", self.parity_size)):
            if len(size) != 2 or min(size) < 1:
                raise ConfigError(f"{key}={list(size)}: give [height, width] in LR pixels")
        if self.batch < 1:
            raise ConfigError(f"batch={self.batch}: must be >= 1")
        if self.dynamic and self.batch < 2:
            raise ConfigError(
                f"batch={self.batch} with dynamic=true: use batch >= 2, since torch.export "
                "fixes a dimension of size 1 to the constant 1"
            )

    @classmethod
    def from_config(cls, cfg: DictConfig) -> ExportOptions:
        """The options of an ``export`` config (``conf/export.yaml``)."""
        return cls(
            format=str(cfg.format).lower(),
            dynamic=bool(cfg.dynamic),
            input_size=tuple(int(v) for v in cfg.input_size),
            batch=int(cfg.batch),
            onnx_exporter=str(cfg.onnx.exporter),
            opset=None if cfg.onnx.opset is None else int(cfg.onnx.opset),
            torchscript_method=str(cfg.torchscript.method),
            parity_size=tuple(int(v) for v in cfg.parity.size),
            atol=float(cfg.parity.atol),
            seed=int(cfg.seed),
        )


@dataclass(frozen=True)
class ExportResult:
    """An export and its parity check against eager PyTorch."""

    path: Path
    format: str
    parity_shape: tuple[int, ...]
    max_abs_diff: float
    atol: float

    @property
    def ok(self) -> bool:
        """Whether the export matches eager PyTorch within ``atol``."""
        return math.isfinite(self.max_abs_diff) and self.max_abs_diff <= self.atol


# -- exporting ---------------------------------------------------------------------------


def export_onnx(
    net: nn.Module,
    path: Path,
    example: torch.Tensor,
    dynamic: bool = True,
    exporter: str = "dynamo",
    opset: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``net`` as an ONNX model with input ``lr`` and output ``sr``.

    With ``dynamic``, the batch, height and width of ``lr`` are named dimensions (``batch``,
    ``height``, ``width``); ``metadata`` goes into the model's ``metadata_props``.

    Raises:
        ExportError: the exporter's dependencies are missing, or it cannot trace ``net``.
    """
    _require("onnx", *(("onnxscript",) if exporter == "dynamo" else ()))
    name = type(net).__name__
    # One file, weights inside, unless ONNX's 2 GB protobuf limit forces them out.
    weight_bytes = sum(p.numel() * p.element_size() for p in net.state_dict().values())
    external = weight_bytes > 1.5 * 2**30
    try:
        with torch.no_grad(), _quiet_exporter():
            if exporter == "dynamo":
                dims = [torch.export.Dim(n, min=1) for n in ("batch", "height", "width")]
                torch.onnx.export(
                    net,
                    (example,),
                    str(path),
                    dynamo=True,
                    input_names=["lr"],
                    output_names=["sr"],
                    dynamic_shapes=({0: dims[0], 2: dims[1], 3: dims[2]},) if dynamic else None,
                    opset_version=opset,
                    external_data=external,
                    verbose=False,
                )
            else:
                axes = {0: "batch", 2: "height", 3: "width"}
                sr_axes = {0: "batch", 2: "sr_height", 3: "sr_width"}
                torch.onnx.export(
                    net,
                    (example,),
                    str(path),
                    dynamo=False,
                    input_names=["lr"],
                    output_names=["sr"],
                    dynamic_axes={"lr": axes, "sr": sr_axes} if dynamic else None,
                    opset_version=opset or 17,
                )
    except Exception as error:  # the exporters raise many types; all mean "cannot export"
        hint = _FIXED_SIZE_HINT if dynamic or exporter == "legacy" else _RUNS_HINT
        raise ExportError(
            f"torch.onnx.export ({exporter}) could not export {name}: {_summary(error)}. {hint}"
        ) from error
    if metadata:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        onnx.helper.set_model_props(model, metadata)
        onnx.save(model, str(path))


def export_torchscript(
    net: nn.Module,
    path: Path,
    example: torch.Tensor,
    method: str = "trace",
    metadata: dict[str, str] | None = None,
) -> None:
    """Write ``net`` as a TorchScript file (``torch.jit.load`` reads it; so does LibTorch).

    ``trace`` records the operations run on ``example``: every convolutional network traces,
    and stays valid at other sizes as long as no size is computed in Python (the parity check
    at another size tells). ``metadata`` is stored as the extra file ``srlab.json``.

    Raises:
        ExportError: ``net`` cannot be traced or scripted.
    """
    name = type(net).__name__
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # PyTorch deprecates torch.jit in favour of torch.export, yet TorchScript files are
            # still what LibTorch and many deployment tools load: the warning would only alarm.
            warnings.simplefilter("ignore", DeprecationWarning)
            # "the trace might not generalize": the parity check at another size tests that.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            if method == "trace":
                # check_trace re-runs the graph to compare (10+ s for EDSR-baseline); the parity
                # check after saving compares too, and at another size.
                module = torch.jit.trace(net, example, check_trace=False)
            else:
                module = torch.jit.script(net)
            extra = {"srlab.json": json.dumps(metadata or {})}
            torch.jit.save(module, str(path), _extra_files=extra)
    except Exception as error:  # tracing/scripting raise many types; all mean "cannot export"
        hint = (
            "srlab's networks are written for tracing: use torchscript.method=trace"
            if method == "script"
            else _FIXED_SIZE_HINT
        )
        raise ExportError(
            f"torch.jit.{method} could not export {name}: {_summary(error)}. {hint}"
        ) from error


# -- parity ------------------------------------------------------------------------------


def run_exported(path: Path, fmt: str, lr: torch.Tensor) -> torch.Tensor:
    """Run an exported file on ``lr``: ONNX Runtime (CPU) for ONNX, ``torch.jit.load`` for
    TorchScript, the network its metadata describes for safetensors."""
    if fmt == "safetensors":
        described = stored_model_metadata(path) or {}
        net = instantiate(described["model"]["net"], _convert_="all")
        net.load_state_dict(read_safetensors(path))
        with torch.no_grad():
            return net.eval()(lr)
    if fmt == "onnx":
        _require("onnxruntime")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (output,) = session.run(["sr"], {"lr": lr.numpy()})
        return torch.from_numpy(np.asarray(output))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see export_torchscript
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(lr)


def check_parity(net: nn.Module, path: Path, fmt: str, lr: torch.Tensor) -> float:
    """The largest absolute difference between the exported file and eager ``net`` on ``lr``.

    Raises:
        ExportError: the exported file fails on ``lr`` or returns another shape (typically an
            export that fixed the example's size).
    """
    with torch.no_grad():
        expected = net(lr)
    try:
        got = run_exported(path, fmt, lr)
    except ExportError:
        raise
    except Exception as error:  # ONNX Runtime / TorchScript runtime errors
        raise ExportError(
            f"the exported {path} fails on an input of shape {list(lr.shape)}: "
            f"{_summary(error)}. {_FIXED_SIZE_HINT}"
        ) from error
    if got.shape != expected.shape:
        raise ExportError(
            f"the exported {path} returns shape {list(got.shape)} for input {list(lr.shape)}, "
            f"eager PyTorch {list(expected.shape)}. {_FIXED_SIZE_HINT}"
        )
    return float((got.float() - expected.float()).abs().max())


# -- entry point -------------------------------------------------------------------------


def export(cfg: DictConfig) -> ExportResult:
    """Export the network of ``cfg`` (``ckpt_path`` and/or ``model``) and check it.

    Writes ``cfg.output`` (default ``<run dir>/<model>_x<scale>.onnx`` or ``.pt``), prints the
    parity check and returns it.

    Raises:
        ExportError: export failed, or the file differs from eager PyTorch by more than
            ``parity.atol`` (the file is kept, for inspection).
    """
    options = ExportOptions.from_config(cfg)
    if options.format == "onnx":  # fail before the (slow) export, not after it
        _require(
            "onnx", "onnxruntime", *(("onnxscript",) if options.onnx_exporter == "dynamo" else ())
        )
    network = build_network(cfg)
    net, model_name, scale = network.net.cpu().float(), network.name, network.scale
    path = (
        Path(cfg.output)
        if cfg.get("output")
        else (Path(cfg.paths.output_dir) / f"{model_name}_x{scale}{FORMATS[options.format]}")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = int(getattr(net, "num_in_ch", 3))
    generator = torch.Generator().manual_seed(options.seed)
    example = torch.rand(options.batch, channels, *options.input_size, generator=generator)
    metadata = {
        "srlab.model": model_name,
        "srlab.network": type(net).__name__,
        "srlab.scale": str(scale),
        "srlab.input": f"lr [batch, {channels}, height, width] float32 in [0, 1]",
        "srlab.output": f"sr [batch, C, {scale}*height, {scale}*width] float32, not clamped",
    }
    if options.format == "onnx":
        export_onnx(
            net, path, example, options.dynamic, options.onnx_exporter, options.opset, metadata
        )
    elif options.format == "safetensors":
        # Weights and the model config: the file alone rebuilds the network (eval, infer).
        described = {"model": network.model_config, "scale": scale}
        write_safetensors(path, net.state_dict(), described)
    else:
        export_torchscript(net, path, example, options.torchscript_method, metadata)
    parity_input = (
        torch.rand(1, channels, *options.parity_size, generator=generator)
        if options.dynamic
        else torch.rand(options.batch, channels, *options.input_size, generator=generator)
    )
    diff = check_parity(net, path, options.format, parity_input)
    result = ExportResult(path, options.format, tuple(parity_input.shape), diff, options.atol)
    print_result(result, options)
    if not result.ok:
        raise ExportError(
            f"{path} differs from eager PyTorch by up to {diff:.3g} (> parity.atol="
            f"{options.atol:g}) on a random input of shape {list(parity_input.shape)}: the file "
            "is kept for inspection; do not deploy it"
        )
    return result


def print_result(result: ExportResult, options: ExportOptions) -> None:
    """Print where the export went and its parity check against eager PyTorch."""
    runtime, method = {
        "onnx": ("ONNX Runtime", options.onnx_exporter),
        "torchscript": ("torch.jit.load", options.torchscript_method),
        "safetensors": ("rebuilt network", "weights + model config"),
    }[result.format]
    table = Table(title="export", show_header=False)
    table.add_column(justify="right")
    table.add_column(overflow="fold")
    table.add_row("file", str(result.path))
    table.add_row("size", f"{result.path.stat().st_size / 2**20:.1f} MiB")
    table.add_row("format", f"{result.format} ({method})")
    table.add_row(
        "shapes",
        "dynamic batch, height, width"
        if options.dynamic
        else f"fixed: {list(result.parity_shape)}",  # the parity input is the example's shape
    )
    table.add_row("parity input", f"random {list(result.parity_shape)}")
    verdict = "[green]ok[/green]" if result.ok else "[red]FAILED[/red]"
    table.add_row(
        f"max |{runtime} - eager|",
        f"{result.max_abs_diff:.3g} (atol {result.atol:g}) {verdict}",
    )
    Console().print(table)
    log.info("exported %s; parity max abs diff %.3g", result.path, result.max_abs_diff)


# -- helpers -----------------------------------------------------------------------------


def _require(*modules: str) -> None:
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: {_INSTALL_HINT}")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's noise that says nothing about this network.

    It warns about its own internals and logs what its passes do; real problems still raise.
    """
    # torchvision operators it cannot register (torchvision is not a dependency), and the
    # optimizer passes of onnxscript / onnx_ir narrating what they did, at INFO.
    loggers = {
        name: logging.getLogger(name)
        for name in ("torch.onnx._internal.exporter._registration", "onnxscript", "onnx_ir")
    }
    levels = {name: logger.level for name, logger in loggers.items()}
    for logger in loggers.values():
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deprecated
            # The legacy exporter traces: the parity check at another size tests generality.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def _summary(error: BaseException) -> str:
    """One line of an exporter's (often page-long) error: its exception summary if it has one."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines:
        after = lines[lines.index("## Exception summary") + 1 :]
        if after:
            return after[0]
    return lines[0] if lines else type(error).__name__

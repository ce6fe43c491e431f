"""What each architecture of the archs extra supports, measured: the README's architecture table.

``python benchmarks/architectures.py [--models swinir hat ...] [--scale 2] [--json out.json]``

For every community model config (``conf/model/``, networks from :mod:`srlab.models.community`)
at ``--scale``:

* **params**: parameters of the paper configuration (srlab = the official code, through
  spandrel), beside the count the paper prints (``tests/test_architectures.py`` holds both);
* **fp16 / bf16**: PSNR of the output under CPU autocast against fp32's, on a random 40x40 LR
  input, with the network's random initial weights at the paper configuration, and whether
  the architecture is marked safe (``Precision`` of its class, which training and inference
  enforce). Random weights show the arithmetic's error, not the overflow some architectures
  hit with trained weights (SwinIR in fp16): the flags also rest on what their users report;
* **onnx / torchscript**: :func:`srlab.app.export.export_onnx` with dynamic sizes and a
  ``torch.jit.trace``, each run again at another size (37x53) against eager PyTorch; where
  the dynamic ONNX fails, an export for the example's size (``dynamic=false``) checked there;
* **tiled**: :func:`srlab.imaging.predict.make_predictor` with 32-pixel tiles and 16 of overlap
  on a 64x48 input, its largest difference from the whole-image output.

Exports and tiling run in a child process each, on a small network of the same architecture (``TINY_NETS`` of the tests)
to keep the run short; the precision columns use the paper configuration.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from helpers import TINY_NETS, compose_config  # noqa: E402

from srlab.app.export import ExportError, check_parity, export_onnx, export_torchscript  # noqa: E402
from srlab.imaging.predict import make_predictor  # noqa: E402
from srlab.models.community import Precision  # noqa: E402

COMMUNITY = [
    "rcan",
    "swinir",
    "swinir_light",
    "swinir_real",
    "swin2sr",
    "hat",
    "hat_s",
    "hat_l",
    "dat",
    "dat_light",
    "span",
    "omnisr",
    "compact",
]


def _net(model: str, scale: int, tiny: bool) -> torch.nn.Module:
    overrides = [f"model={model}", f"scale={scale}", *(TINY_NETS[model] if tiny else [])]
    cfg = compose_config(Path(tempfile.mkdtemp()), overrides)
    torch.manual_seed(0)
    return instantiate(cfg.model.net, _convert_="all").eval()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of ``a`` against ``b`` over ``b``'s range (random networks are not in [0, 1])."""
    peak = float(b.max() - b.min()) or 1.0
    mse = float(torch.mean((a.float() - b.float()) ** 2))
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def precision_psnr(net: torch.nn.Module, lr: torch.Tensor) -> dict[str, float]:
    """PSNR of fp16 and bf16 CPU autocast outputs against fp32's."""
    with torch.no_grad():
        reference = net(lr)
        out = {}
        for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            with torch.autocast("cpu", dtype=dtype):
                out[name] = psnr(net(lr), reference)
    return out


def _try(fn) -> str:
    try:
        return fn()
    except ExportError as error:
        return f"no ({str(error)[:120]})"
    except Exception as error:  # what an exporter or a network raises varies
        return f"no ({type(error).__name__}: {str(error)[:120]})"


def export_checks(net: torch.nn.Module, scale: int) -> dict[str, str]:
    """ONNX (dynamic) and TorchScript (trace) export, each checked at another size."""
    example, other = torch.rand(2, 3, 32, 32), torch.rand(1, 3, 37, 53)
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def onnx() -> str:
            try:
                export_onnx(net, Path(tmp) / "n.onnx", example, dynamic=True)
                return f"yes ({check_parity(net, Path(tmp) / 'n.onnx', 'onnx', other):.1e})"
            except ExportError:  # what `src/export.py dynamic=false input_size=[H,W]` gives
                export_onnx(net, Path(tmp) / "f.onnx", example, dynamic=False)
                diff = check_parity(net, Path(tmp) / "f.onnx", "onnx", example)
                return f"fixed size only ({diff:.1e})"

        def script() -> str:
            export_torchscript(net, Path(tmp) / "n.pt", example)
            return f"yes ({check_parity(net, Path(tmp) / 'n.pt', 'torchscript', other):.1e})"

        out["onnx"] = _try(onnx)
        out["torchscript"] = _try(script)
    return out


def tiling_check(net: torch.nn.Module, scale: int) -> str:
    """Largest difference of 32-pixel tiles (16 overlap) from the whole 64x48 image."""
    lr = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        whole = make_predictor(net, scale)(lr)
        tiled = make_predictor(net, scale, tile=32, tile_overlap=16)(lr)
    return f"{float((whole - tiled).abs().max()):.1e}"


def _exports_and_tiling(model: str, scale: int) -> dict[str, str]:
    tiny = _net(model, scale, tiny=True)
    return {**export_checks(tiny, scale), "tiled_max_diff": tiling_check(tiny, scale)}


def _in_subprocess(model: str, scale: int) -> dict[str, str]:
    """:func:`_exports_and_tiling` in a child process: an exporter that crashes the process
    (it happened here) becomes a row that says so."""
    command = [sys.executable, __file__, "--child", model, str(scale)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    failed = f"no (the process died: exit {done.returncode})"
    return {"onnx": failed, "torchscript": failed, "tiled_max_diff": failed}


def measure(model: str, scale: int) -> dict[str, object]:
    """Every column of the table for one model config."""
    started = time.perf_counter()
    net = _net(model, scale, tiny=False)
    flags: Precision = type(net).precision
    row: dict[str, object] = {
        "model": model,
        "class": type(net).__name__,
        "params": sum(p.numel() for p in net.parameters()),
        "fp16_safe": flags.fp16,
        "bf16_safe": flags.bf16,
    }
    torch.manual_seed(1)
    row.update({f"{k}_psnr": v for k, v in precision_psnr(net, torch.rand(1, 3, 40, 40)).items()})
    del net
    row.update(_in_subprocess(model, scale))
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> None:
    """Measure and print the table (and write it as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=COMMUNITY)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--exports-only", action="store_true", help="only the ONNX, TorchScript, tiling columns"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.child:
        print(json.dumps(_exports_and_tiling(args.child[0], int(args.child[1]))))
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    print("| model | params | fp16 PSNR (safe) | bf16 PSNR (safe) | ONNX | TorchScript | tiled |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        scale = 4 if model == "swinir_real" else args.scale
        if args.exports_only:
            print(f"| {model} x{scale} | {_in_subprocess(model, scale)} |", flush=True)
            continue
        row = measure(model, scale)
        rows.append(row)
        print(
            f"| {model} x{scale} | {row['params']:,} | {row['fp16_psnr']:.1f} "
            f"({'yes' if row['fp16_safe'] else 'no'}) | {row['bf16_psnr']:.1f} "
            f"({'yes' if row['bf16_safe'] else 'no'}) | {row['onnx']} | {row['torchscript']} "
            f"| {row['tiled_max_diff']} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

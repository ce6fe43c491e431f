"""Speed of srlab's MATLAB-bicubic ``imresize`` against the dense one it replaced and PyTorch's.

``python benchmarks/imresize_speed.py [--rounds 5] [--threads N] [--quick]``

Times, on the CPU, in one process:

* **dense**: the previous implementation (a float64 ``[out_len, in_len]`` resampling matrix
  per dimension, built with numpy, cached, applied with two matmuls), copied below;
* **interpolate**: ``F.interpolate(mode="bicubic", align_corners=False)`` (``antialias=True``
  when shrinking), PyTorch's own bicubic: another kernel (a = -0.75, replicated borders),
  so a speed reference only, not a drop-in;
* **srlab**: :func:`srlab.imaging.imresize` (a convolution per pass for integer factors, a
  gather of the taps otherwise).

Cases: x4 upscale of a 2040x1356 float32 image ``[1, 3, 1356, 2040]`` (DIV2K's 2K, the
size an x4 network's bicubic sees when super-resolving a 2K LR image), 1/4 downscale of the
same image (float32, and uint8 ``[3, 1356, 2040]`` as the data pipeline makes LR images),
and x3 / 0.37 cases that take the other code paths. The implementations are timed in
interleaved rounds, so that load from other processes weighs on all of them alike; the
table gives the median of the rounds after a warm-up round (the dense matrices are cached
by then, as they are in a long run). Before timing, each case checks that srlab's output
equals the dense one (bit-exact for uint8, within 1e-6 for float32).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from srlab.imaging import imresize

# --- the previous, dense implementation (the reference) -----------------------------------


def _load_reference() -> Callable[..., torch.Tensor]:
    """``_dense_imresize`` of ``tests/test_imresize.py``: the dense implementation srlab had
    before, kept once, as the tests' equality reference (benchmarks/ and tests/ are not
    packages, so it is loaded from its file)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_imresize.py"
    spec = importlib.util.spec_from_file_location("imresize_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._dense_imresize


dense_imresize = _load_reference()


# --- the cases -----------------------------------------------------------------------------


def _interpolate(scale: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, scale_factor=scale, mode="bicubic", align_corners=False, antialias=scale < 1
        )

    return run


def cases(quick: bool) -> list[tuple[str, torch.Tensor, dict]]:
    """(name, input, imresize keyword arguments) of each case; ``quick``: images 4x smaller."""
    generator = torch.Generator().manual_seed(0)
    shrink = 4 if quick else 1
    two_k = torch.rand(1, 3, 1356 // shrink, 2040 // shrink, generator=generator)
    two_k_u8 = torch.randint(
        0, 256, (3, 1356 // shrink, 2040 // shrink), dtype=torch.uint8, generator=generator
    )
    lr = torch.rand(1, 3, 339 // shrink, 510 // shrink, generator=generator)
    found = [
        ("x4 up", two_k, {"scale": 4}),
        ("1/4 down", two_k, {"scale": 1 / 4}),
        ("1/4 down", two_k_u8, {"scale": 1 / 4}),
        ("x3 up", lr, {"scale": 3}),
        ("0.37 down", two_k, {"scale": 0.37}),
    ]
    named = []
    for label, image, kwargs in found:
        height, width = image.shape[-2:]
        dtype = "u8" if image.dtype == torch.uint8 else "f32"
        named.append((f"{label} {width}x{height} {dtype}", image, kwargs))
    return named


def _versus(other: float, new: float) -> str:
    ratio = other / new
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def _time(fn: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after a warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--quick", action="store_true", help="4x smaller images (smoke run)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"CPU: {_cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"load average {os.getloadavg()[0]:.2f}; {args.rounds} rounds, median seconds"
    )
    rows = []
    for name, image, kwargs in cases(args.quick):
        scale = kwargs["scale"]
        impls: dict[str, Callable[[], torch.Tensor]] = {
            "dense": lambda image=image, kwargs=kwargs: dense_imresize(image, **kwargs),
            "srlab": lambda image=image, kwargs=kwargs: imresize(image, **kwargs),
        }
        if image.dtype.is_floating_point:
            impls["interpolate"] = lambda image=image, s=scale: _interpolate(s)(image)
        # Correctness first (this call is also the warm-up round).
        want, got = impls["dense"](), impls["srlab"]()
        if image.dtype.is_floating_point:
            err = float((want - got).abs().max())
            assert err <= 1e-6, f"{name}: srlab differs from dense by {err}"
        else:
            assert torch.equal(want, got), f"{name}: srlab differs from dense on uint8"
        del want, got
        if "interpolate" in impls:
            impls["interpolate"]()  # its warm-up
        times: dict[str, list[float]] = {key: [] for key in impls}
        keys = list(impls)
        for round_ in range(args.rounds):
            # Each round in another order, so that none always runs first (or after another).
            for key in keys[round_ % len(keys) :] + keys[: round_ % len(keys)]:
                times[key].append(_time(impls[key]))
        med = {key: statistics.median(values) for key, values in times.items()}
        rows.append((name, med))
        print(f"  done: {name}", flush=True)

    print()
    print("| case | dense (old) | F.interpolate | srlab (new) | new vs interpolate | new vs old |")
    print("|" + "---|" * 6)
    for name, med in rows:
        interp = med.get("interpolate")
        print(
            f"| {name} | {med['dense']:.3f} s | "
            + (f"{interp:.3f} s" if interp is not None else "n/a (uint8)")
            + f" | {med['srlab']:.3f} s | "
            + (_versus(interp, med["srlab"]) if interp is not None else "-")
            + f" | {_versus(med['dense'], med['srlab'])} |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""A prepared check of srlab on a CUDA machine: one process, under 8 minutes, one table.

``python benchmarks/gpu_check.py [--out DIR] [--budget-s 420]`` runs, in this order:

1. **Environment**: torch, CUDA and NCCL versions, the GPUs, and the GPU's dense bf16 peak
   (looked up by device name in :data:`BF16_DENSE_PEAK_TFLOPS`).
2. **Training steps of every model family** (:data:`FAMILIES`: regression EDSR-baseline, the
   GAN task of ``experiment=esrgan_smoke`` (manual optimization, two optimizers, a GradScaler
   under 16-mixed), a transformer, SwinIR-light, when ``conf/model/swinir_light.yaml`` exists)
   at ``32-true``, ``bf16-mixed`` and ``16-mixed``, eager, on a synthetic batch; the GAN task
   also with ``trainer.accumulate_grad_batches=2`` under ``16-mixed``.
3. **DDP** over the GPUs present (``trainer=ddp``, NCCL): a ``debug=fast`` training and test
   of EDSR-baseline; with one GPU, one rank in this process, with more, ``src/train.py`` in a
   child process (Lightning starts the other ranks by running the script again).
4. **EDSR-baseline x2 throughput** (batch 16, LR patch 48): the training step alone and the
   full loop (``Trainer.fit`` on the cached loader) in patches/s and as a fraction of the
   GPU's bf16 dense peak (a training step counted as 3 x the forward pass's 2 x MACs); the
   cached loader alone with the workers ``data.num_workers=auto`` picks; inference (SR
   megapixels/s) whole and tiled.
5. **torch.compile** of every family at the three precisions, as long as the time budget
   (``--budget-s``) lasts: compilation is what takes longest, so it comes last, bf16 first.

Every check that fails is a row with its error (the JSON holds the traceback) and makes the
exit status 1; a setting srlab refuses with a user error (an :class:`srlab.errors.SRLabError`,
e.g. fp16 for a network that overflows in it) is a row that says so. Writes ``gpu_check.json``
and ``gpu_check.md`` to ``--out`` (default ``outputs/gpu_check/<date>_<time>/``).

Without CUDA it says so and runs a dry run of its CPU parts on tiny sizes (configs composed,
one eager fp32 step per family, the loop, the loader, inference, the tables) and exits 0 when
they pass: ``tests/test_gpu_check.py`` runs it so.

The timing sections reuse ``benchmarks/throughput.py`` (its step, loop, loader and inference
measurements).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from srlab.errors import SRLabError
from srlab.runtime.hydra import configure_hydra

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUDGET_S = 420  # the check's own limit: 7 of the 8 minutes, before the compile cases

#: Dense (no sparsity) bf16 Tensor Core peak in TFLOPS by device-name pattern, first match wins.
#: NVIDIA's datasheets print the sparse figure with a footnote; the dense one is half of it.
BF16_DENSE_PEAK_TFLOPS: list[tuple[str, float, str]] = [
    # H100 datasheet (nvidia.com/en-us/data-center/h100): BF16 Tensor Core 1,979 TFLOPS (SXM),
    # 1,513 (PCIe), 1,671 (NVL), "with sparsity".
    (r"H100.*PCIe", 756.0, "NVIDIA H100 PCIe datasheet: 1,513 TFLOPS with sparsity"),
    (r"H100.*NVL", 835.5, "NVIDIA H100 NVL datasheet: 1,671 TFLOPS with sparsity"),
    (r"H100", 989.5, "NVIDIA H100 SXM datasheet: 1,979 TFLOPS with sparsity"),
    # H200 datasheet (nvidia.com/en-us/data-center/h200): BF16 1,979 TFLOPS (SXM), 1,671 (NVL).
    (r"H200.*NVL", 835.5, "NVIDIA H200 NVL datasheet: 1,671 TFLOPS with sparsity"),
    (r"H200", 989.5, "NVIDIA H200 SXM datasheet: 1,979 TFLOPS with sparsity"),
    # A100 datasheet (nvidia.com/en-us/data-center/a100): BF16 Tensor Core 312 | 624* TFLOPS.
    (r"A100", 312.0, "NVIDIA A100 datasheet: 312 TFLOPS dense (624 with sparsity)"),
    # L40S datasheet: BF16 Tensor Core 362.05 | 733* TFLOPS.
    (r"L40S", 362.0, "NVIDIA L40S datasheet: 362 TFLOPS dense (733 with sparsity)"),
    # L4 datasheet (nvidia.com/en-us/data-center/l4): BF16 Tensor Core 242* TFLOPS.
    (r"\bL4\b", 121.0, "NVIDIA L4 datasheet: 242 TFLOPS with sparsity"),
    # A10 datasheet: BF16 Tensor Core 125 | 250* TFLOPS.
    (r"\bA10\b", 125.0, "NVIDIA A10 datasheet: 125 TFLOPS dense (250 with sparsity)"),
]

PRECISIONS = {"32-true": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


@dataclass(frozen=True)
class Family:
    """A model family to check: its config overrides on a GPU and for the CPU dry run."""

    name: str
    kind: str
    overrides: list[str]
    dry_run: list[str]
    requires: str | None = None  # a config file without which the family is skipped


COMMON = ["logger=none", "task_name=gpu_check", "data.repeat=400"]
#: The families of the training-step checks.
FAMILIES = [
    Family(
        "edsr_baseline",
        "regression",
        ["model=edsr_baseline", "scale=2", "data.batch_size=16", "data.patch_size=96"],
        ["model=edsr_baseline", "model.net.num_block=1", "data.batch_size=2", "data.patch_size=32"],
    ),
    Family(
        "esrgan_smoke",
        "GAN (manual optimization)",
        ["experiment=esrgan_smoke", "data.batch_size=8"],
        # Without the perceptual term: a random VGG19 takes seconds to build on a CPU.
        [
            "experiment=esrgan_smoke",
            "model.loss.perceptual=null",
            "model.loss_weights.perceptual=0",
            "data.batch_size=1",
        ],  # fmt: skip
    ),
    Family(
        "swinir_light",
        "transformer",
        ["model=swinir_light", "scale=2", "data.batch_size=16", "data.patch_size=128"],
        [
            "model=swinir_light",
            "model.net.depths=[2]",
            "model.net.num_heads=[6]",
            "data.batch_size=1",
            "data.patch_size=32",
        ],  # fmt: skip
        requires="conf/model/swinir_light.yaml",
    ),
]
# The throughput section's network: EDSR-baseline x2, batch 16, LR patch 48 (tiny in a dry run).
EDSR_X2, EDSR_X2_DRY = FAMILIES[0].overrides, FAMILIES[0].dry_run


def load_throughput() -> Any:
    """``benchmarks/throughput.py`` as a module (benchmarks are scripts, not a package)."""
    path = REPO_ROOT / "benchmarks" / "throughput.py"
    spec = importlib.util.spec_from_file_location("srlab_benchmark_throughput", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def training_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config ``python src/train.py <overrides>`` would get, writing to ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        cfg = compose("train", overrides=[*COMMON, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO_ROOT)
        cfg.paths.output_dir = str(output_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(REPO_ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def bf16_peak(device_name: str) -> tuple[float | None, str]:
    """The dense bf16 peak (TFLOPS) of a GPU by its name, and where the figure comes from."""
    for pattern, tflops, source in BF16_DENSE_PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops, source
    return None, f"no dense bf16 peak on file for {device_name!r}"


@dataclass
class Check:
    """The rows of the check, its failures, and its time budget."""

    budget_s: float
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def attempt(self, section: str, setting: str, run: Callable[[], dict[str, Any]]) -> dict:
        """Run one check and add its row: ``ok`` with what ``run`` returned, ``refused``
        (a user error srlab raised), or ``failed`` with the error and its traceback."""
        row: dict[str, Any] = {"section": section, "setting": setting}
        start = time.monotonic()
        try:
            row.update(run())
            row["status"] = "ok"
        except SRLabError as error:
            row.update(status="refused", error=str(error))
        except Exception as error:  # noqa: BLE001 - every failure is a row of the report
            row.update(
                status="failed",
                error=f"{type(error).__name__}: {error}",
                traceback=traceback.format_exc(),
            )
        row["seconds"] = round(time.monotonic() - start, 1)
        print(f"[{self.elapsed_s:6.1f} s] {section} | {setting}: {_describe(row)}", flush=True)
        self.rows.append(row)
        return row

    def skip(self, section: str, setting: str, reason: str) -> None:
        """Add a row for a check that did not run, with why."""
        self.rows.append({"section": section, "setting": setting, "status": "skipped",
                          "error": reason})  # fmt: skip
        print(f"[{self.elapsed_s:6.1f} s] {section} | {setting}: skipped ({reason})", flush=True)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] == "failed"]


def _describe(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('error', '')}"
    parts = []
    if "patches_per_s" in row:
        parts.append(f"{row['patches_per_s']:.1f} patches/s")
    if "megapixels_per_s" in row:
        parts.append(f"{row['megapixels_per_s']:.2f} SR MP/s")
    if row.get("peak_fraction") is not None:
        parts.append(f"{row['peak_fraction']:.1%} of the bf16 dense peak")
    if row.get("first_step_s") is not None:
        parts.append(f"first step {row['first_step_s']:.1f} s")
    if row.get("peak_cuda_mb") is not None:
        parts.append(f"peak CUDA {row['peak_cuda_mb']:.0f} MB")
    if row.get("note"):
        parts.append(row["note"])
    return ", ".join(parts) or "ok"


# -- sections ------------------------------------------------------------------------------


def environment(gpu: bool) -> dict[str, Any]:
    """Versions and devices; the GPU's bf16 peak."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda_available": gpu,
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    if gpu:
        name = torch.cuda.get_device_name(0)
        peak, source = bf16_peak(name)
        info.update(
            cuda=torch.version.cuda,
            nccl=".".join(map(str, torch.cuda.nccl.version())),
            gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            bf16_supported=torch.cuda.is_bf16_supported(),
            bf16_dense_peak_tflops=peak,
            bf16_peak_source=source,
        )
    return info


def step_check(bench: Any, cfg: DictConfig, setting_name: str, warmup: int, steps: int) -> dict:
    """Patches/s of ``cfg.model``'s training step in one ``bench.settings`` setting."""
    setting = bench.StepSetting.parse(setting_name)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timing = bench.measure_steps(cfg, [setting], rounds=1, warmup=warmup, steps=steps)
    timing = timing[setting.name]
    result = {
        "patches_per_s": timing.patches_per_s(cfg.data.batch_size),
        "first_step_s": timing.first_step_s,
    }
    if torch.cuda.is_available():
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def flops_per_patch(cfg: DictConfig) -> float:
    """Training FLOPs per patch of ``cfg.model.net``: 3 x (2 x MACs per LR pixel x LR pixels)."""
    from hydra.utils import instantiate

    from srlab.models import summary

    net = instantiate(cfg.model.net, _convert_="all")
    lr_side = cfg.data.patch_size // cfg.scale
    return 3 * 2 * summary(net, scale=cfg.scale, lr_size=16).macs_per_lr_pixel * lr_side**2


def ddp_check(overrides: list[str], out: Path) -> dict[str, Any]:
    """A ``debug=fast`` training and test under ``trainer=ddp`` on every GPU present."""
    gpus = torch.cuda.device_count()
    args = [*overrides, "trainer=ddp", f"trainer.devices={gpus}", "debug=fast"]
    if gpus == 1:
        from srlab.app.train import train

        try:
            psnr = train(training_config(args, out / "ddp"))
        finally:
            # The later checks train on one device, outside any process group.
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
        return {"note": f"1 rank (NCCL), best val/psnr {psnr}"}
    # Lightning starts ranks 1..n-1 by running the script again: that must be train.py.
    command = [sys.executable, "src/train.py", *COMMON, *args, f"hydra.run.dir={out / 'ddp'}"]
    subprocess.run(command, cwd=REPO_ROOT, check=True, timeout=300)
    return {"note": f"{gpus} ranks (NCCL), src/train.py in a child process"}


def run_checks(check: Check, gpu: bool) -> dict[str, Any]:
    """Every section (see the module docstring); the dry run without a GPU."""
    bench = load_throughput()
    env = environment(gpu)
    check.rows.append({"section": "environment", "setting": "", "status": "ok", **env})
    precisions = list(PRECISIONS.values()) if gpu else ["fp32"]
    warmup, steps = (2, 5) if gpu else (1, 1)
    families = []
    for family in FAMILIES:
        if family.requires and not (REPO_ROOT / family.requires).is_file():
            check.skip("training step", family.name, f"{family.requires} does not exist")
            continue
        families.append(family)

    def config(family: Family, extra: list[str] = ()) -> DictConfig:
        return training_config([*(family.overrides if gpu else family.dry_run), *extra], check.out)

    for family in families:
        for precision in precisions:
            check.attempt(
                f"training step, {family.kind}",
                f"{family.name} {precision} eager",
                lambda f=family, p=precision: step_check(bench, config(f), f"{p}_eager", warmup, steps),
            )  # fmt: skip
    gan = next((f for f in families if f.name == "esrgan_smoke"), None)
    if gan is not None:
        accumulate = ["trainer.accumulate_grad_batches=2"]
        precision = "fp16" if gpu else "fp32"
        check.attempt(
            "training step, GAN, accumulate_grad_batches=2",
            f"esrgan_smoke {precision} eager",
            lambda: step_check(
                bench, config(gan, accumulate), f"{precision}_eager", 2, 2 * steps if gpu else 2
            ),
        )

    edsr = training_config(EDSR_X2 if gpu else EDSR_X2_DRY, check.out)
    if gpu:
        check.attempt("DDP (trainer=ddp, NCCL)", "edsr_baseline debug=fast",
                      lambda: ddp_check(EDSR_X2, check.out))  # fmt: skip
    else:
        check.skip("DDP (trainer=ddp, NCCL)", "edsr_baseline debug=fast", "needs CUDA and NCCL")

    peak = env.get("bf16_dense_peak_tflops")
    per_patch = flops_per_patch(edsr)
    edsr_setting = "bf16_cl" if gpu else "fp32_eager"

    def with_peak(result: dict[str, Any]) -> dict[str, Any]:
        flops = result["patches_per_s"] * per_patch
        result["tflops"] = flops / 1e12
        result["peak_fraction"] = flops / (peak * 1e12) if peak else None
        return result

    sizes = f"batch {edsr.data.batch_size}, LR patch {edsr.data.patch_size // edsr.scale}"
    check.attempt(f"EDSR-baseline x2 step ({sizes})", edsr_setting,
                  lambda: with_peak(step_check(bench, edsr, edsr_setting, warmup, 4 * steps)))  # fmt: skip

    def loop() -> dict[str, Any]:
        setting = bench.StepSetting.parse(edsr_setting)
        timings = bench.measure_train_loop(edsr, setting, 1, warmup, 4 * steps if gpu else 2)
        loop_rate = timings["loop"].patches_per_s(edsr.data.batch_size)
        step_rate = timings["step"].patches_per_s(edsr.data.batch_size)
        return with_peak({"patches_per_s": loop_rate,
                          "note": f"{loop_rate / step_rate:.0%} of the step timed beside it"})  # fmt: skip

    check.attempt(f"EDSR-baseline x2 full loop ({sizes}, cached loader)", edsr_setting, loop)

    def loader() -> dict[str, Any]:
        result = bench.measure_loader(edsr, cache=True, batches=100 if gpu else 3)
        return {**result, "note": f"{result['workers']} workers (data.num_workers=auto)"}

    check.attempt("cached loader alone", "data.num_workers=auto", loader)
    size = 1024 if gpu else 64
    tile_side = 256 if gpu else 32

    def inference() -> dict[str, Any]:
        setting = bench.StepSetting.parse(edsr_setting)
        overlap, rounds = (16, 3) if gpu else (4, 1)
        result = bench.measure_inference(edsr, setting, size, tile_side, overlap, rounds)
        tiled, whole = result["tiled"], result["untiled"]
        note = f"whole image {whole['megapixels_per_s']:.2f} SR MP/s"
        if "peak_cuda_mb" in whole:
            note += f" (peak CUDA {whole['peak_cuda_mb']:.0f} MB)"
        return {
            "megapixels_per_s": tiled["megapixels_per_s"],
            "whole_megapixels_per_s": whole["megapixels_per_s"],
            "peak_cuda_mb": tiled.get("peak_cuda_mb"),
            "note": note,
        }

    check.attempt(
        f"inference, {size} x {size} LR",
        f"tiled {tile_side} and whole, {edsr_setting.split('_')[0]}",
        inference,
    )

    if not gpu:
        check.skip("torch.compile", "every family", "compiles for CUDA only in this check")
        return env
    # Compilation last, bf16 first: what the budget leaves out is named, not lost silently.
    for precision in ("bf16", "fp16", "fp32"):
        for family in families:
            setting = f"{family.name} {precision} compile"
            if check.elapsed_s > check.budget_s:
                check.skip("training step, torch.compile", setting, "time budget spent")
                continue
            check.attempt(
                "training step, torch.compile",
                setting,
                lambda f=family, p=precision: step_check(bench, config(f), f"{p}_compile", warmup, steps),
            )  # fmt: skip
    return env


# -- output ----------------------------------------------------------------------------------


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], elapsed_s: float) -> str:
    """The check's table, with its conditions first."""
    if env.get("cuda_available"):
        head = (
            f"{', '.join(env['gpus'])} (compute capability {env['capability']}), torch "
            f"{env['torch']}, CUDA {env['cuda']}, NCCL {env['nccl']}, {env['usable_cpus']} CPUs; "
            f"bf16 dense peak {env['bf16_dense_peak_tflops']} TFLOPS ({env['bf16_peak_source']})."
        )
    else:
        head = f"No CUDA device: dry run of the CPU parts (torch {env['torch']})."
    lines = [
        head + f" {elapsed_s:.0f} s in all.",
        "",
        "| section | setting | status | result |",
        "|---|---|---|---|",
    ]
    for row in rows[1:]:
        result = _describe(row) if row["status"] == "ok" else row.get("error", "")
        result = result.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {row['section']} | {row['setting']} | {row['status']} | {result} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit status 1 if any check failed."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/gpu_check.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="seconds after which the remaining torch.compile cases are skipped")  # fmt: skip
    args = parser.parse_args(argv)
    out = args.out or REPO_ROOT / "outputs" / "gpu_check" / datetime.now().strftime(
        "%Y-%m-%d_%H-%M-%S"
    )
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.is_available()
    if not gpu:
        print("no CUDA device: a dry run of the CPU parts on tiny sizes (no GPU numbers)")
    configure_hydra()
    check = Check(budget_s=args.budget_s, out=out)
    env = run_checks(check, gpu)
    table = markdown(check.rows, env, check.elapsed_s)
    (out / "gpu_check.json").write_text(json.dumps(check.rows, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(table)
    print(table)
    print(f"written to {out}/gpu_check.json and gpu_check.md")
    for row in check.failed:
        print(f"FAILED {row['section']} | {row['setting']}:\n{row['traceback']}", file=sys.stderr)
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of a ``debug=fast`` smoke run of every model and experiment config.

``python benchmarks/smoke_times.py [--only NAME ...] [--data-dir DIR] [-- override ...]``

Reads ``conf/model/`` and ``conf/experiment/`` when it starts (a new architecture's YAML is
picked up without an edit here) and runs, one after the other, as a user would type it::

    python src/train.py model=<name> debug=fast        # every conf/model/*.yaml
    python src/train.py experiment=<name> debug=fast   # every conf/experiment/*.yaml

A model config without a ``_target_`` (``bicubic``: no weights, nothing to train) is smoke-run
through evaluation instead: ``python src/eval.py model=<name> scale=2`` on Set5, each image's
centre crop of ``debug/fast``'s ``data.eval_crop``.

Each run prints its wall time (the whole process: start-up, data, training, validation, test)
and its status; the last line says whether every run finished under ``--limit`` seconds
(60). W&B runs offline (``WANDB_MODE=offline`` unless set). Data: the experiments train on
DIV2K, T91 and General-100 and validate on Set5/Set14 under ``paths.data_dir``; without
``--data-dir`` the script links the reference images of ``../shared/data`` (when present) into
a temporary folder in the catalog's layout. A config whose ``model.pretrained`` is required (``edsr_x4_from_x2``)
starts from random weights of its network at x2, which the script saves. Runs write into a temporary folder, removed
at the end. ``--json FILE`` also writes the times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from srlab.runtime.hydra import configure_hydra

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: Catalog folder (under ``paths.data_dir``) -> reference images under ``../shared/data``.
SHARED_LAYOUT = {
    "T91/HR": "train/T91/HR",
    "General100/HR": "train/General100_partial/HR",
    "DIV2K/DIV2K_train_HR": "train/DIV2K_train_subset/HR",
    "Set5": "benchmarks/Set5",
    "Set14": "benchmarks/Set14",
    "BSD100": "benchmarks/BSD100",  # the FSRCNN and ESPCN reproductions test on it
}

#: What a smoke run of one config needs beyond ``debug=fast`` (no network is shrunk).
EXTRA_OVERRIDES = {
    # GAN configs: one HR patch of the discriminator's input size; a random VGG19 for the
    # perceptual loss (its ImageNet weights would be downloaded, 548 MB; the speed is the same).
    "gan": [
        "data.patch_size=128",  # the VGG-style discriminator's smallest input
        "data.batch_size=1",  # a 128-px patch is 7x the pixels of debug=fast's 48-px one
        "model.loss.perceptual.weights=null",
        "model.loss.perceptual.allow_random_weights=true",
    ],
    # The real-world SwinIR's nearest+conv upsampler is x4 only (training's default is x2).
    "swinir_real": ["scale=4"],
}


@dataclass
class SmokeRun:
    """One config's smoke run: what ran, how long it took, and how it ended."""

    config: str  # model=<name> or experiment=<name>
    command: list[str]
    seconds: float = 0.0
    returncode: int | None = None
    error: str = ""  # the last line of stderr when it failed


def config_names(group: str) -> list[str]:
    """The configs of ``conf/<group>/`` (files starting with ``_`` are shared parts)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def composed(group: str, name: str) -> DictConfig:
    """The training config of ``<group>=<name> debug=fast`` (not resolved)."""
    configure_hydra()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=[f"{group}={name}", "debug=fast"])


def smoke_command(group: str, name: str, run_dir: Path, workdir: Path) -> list[str]:
    """The command line of one config's smoke run, writing into ``run_dir``."""
    cfg = composed(group, name)
    if "_target_" not in cfg.model:
        # Nothing to train (bicubic): its smoke run is an evaluation on the debug crops.
        return [
            sys.executable,
            "src/eval.py",
            f"model={name}",
            "scale=2",
            "data.test_sets=[set5]",
            f"+data.eval_crop={cfg.data.eval_crop}",
            f"hydra.run.dir={run_dir}",
        ]
    command = [sys.executable, "src/train.py", f"{group}={name}", "debug=fast"]
    command.append(f"hydra.run.dir={run_dir}")
    if cfg.model._target_.endswith("SRGANTask"):
        command += EXTRA_OVERRIDES["gan"]
    command += EXTRA_OVERRIDES.get(name, [])
    if OmegaConf.is_missing(cfg.model, "pretrained"):
        command.append(f"model.pretrained={x2_weights(cfg, workdir)}")
    return command


def x2_weights(cfg: DictConfig, workdir: Path) -> Path:
    """Random weights of ``cfg.model.net`` built for x2, saved into ``workdir``: what
    ``edsr_x4_from_x2`` starts from (its ``model.pretrained`` is required)."""
    import torch
    from hydra.utils import instantiate

    path = workdir / f"{cfg.model.name}_x2_random.pth"
    torch.save(instantiate(cfg.model.net, upscale=2).state_dict(), path)
    return path


def link_shared_data(root: Path, shared: Path) -> Path:
    """``root`` with the reference images of ``shared`` linked in the catalog's layout."""
    for name, source in SHARED_LAYOUT.items():
        target = shared / source
        if target.exists():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).symlink_to(target)
    return root


def run(smoke: SmokeRun, env: dict[str, str], timeout: float) -> SmokeRun:
    """Run ``smoke.command`` from the repository root; fill in its time and status."""
    start = time.perf_counter()
    try:
        result = subprocess.run(
            smoke.command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        smoke.returncode = result.returncode
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            smoke.error = lines[-1] if lines else "(no stderr)"
    except subprocess.TimeoutExpired:
        smoke.returncode = -1
        smoke.error = f"killed after {timeout:.0f} s"
    smoke.seconds = time.perf_counter() - start
    return smoke


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="configs to run (file stems)")
    parser.add_argument("--data-dir", type=Path, help="paths.data_dir (default: ../shared/data)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds a run may take")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a kill")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every run")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the smoke runs, print one line each and a verdict; 1 when any failed or was slow."""
    args = parse_args(argv)
    configs = [("model", name) for name in config_names("model")]
    configs += [("experiment", name) for name in config_names("experiment")]
    if args.only:
        unknown = set(args.only) - {name for _, name in configs}
        if unknown:
            known = ", ".join(name for _, name in configs)
            print(f"--only: no config named {', '.join(sorted(unknown))} (known: {known})")
            return 2
        configs = [(group, name) for group, name in configs if name in args.only]
    env = {**os.environ}
    env.setdefault("WANDB_MODE", "offline")
    load_before = os.getloadavg()
    results: list[SmokeRun] = []
    with tempfile.TemporaryDirectory(prefix="srlab_smoke_") as tmp:
        workdir = Path(tmp)
        if args.data_dir is not None:
            env["SRLAB_DATA_DIR"] = str(args.data_dir)
        elif SHARED_DATA.is_dir():
            env["SRLAB_DATA_DIR"] = str(link_shared_data(workdir / "data", SHARED_DATA))
        for group, name in configs:
            command = smoke_command(group, name, workdir / "runs" / name, workdir)
            smoke = run(SmokeRun(f"{group}={name}", command + args.overrides), env, args.timeout)
            results.append(smoke)
            status = "ok" if smoke.returncode == 0 else f"FAILED ({smoke.error})"
            print(f"{smoke.config:40s} {smoke.seconds:6.1f} s  {status}", flush=True)
    load_after = os.getloadavg()
    slow = [r for r in results if r.returncode == 0 and r.seconds >= args.limit]
    failed = [r for r in results if r.returncode != 0]
    print(
        f"{len(results)} runs, {len(failed)} failed, {len(slow)} at or over {args.limit:.0f} s; "
        f"slowest {max((r.seconds for r in results), default=0):.1f} s; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    if args.json is not None:
        record = {
            "limit_s": args.limit,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "runs": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 1 if failed or slow else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

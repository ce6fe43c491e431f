"""Turn a reproduction run into a zoo entry, and write the reproduction report from the records.

A reproduction is three commands, each what a user would type::

    python src/train.py experiment=fsrcnn_x2_reproduce data.root=<data>      # the run
    python benchmarks/reproduce.py package <run dir> --name fsrcnn_x2 --data-root <data>
    python benchmarks/reproduce.py report

``package`` exports the run's final weights with ``src/export.py format=safetensors`` into
``src/srlab/zoo/<name>.safetensors``, scores them with ``src/eval.py ckpt_path=zoo:<name>``
on Set5, Set14 and BSD100 under two LR conventions (the paper test code's, ``eval.lr_from=y``,
and srlab's default, 8-bit RGB LR), and writes ``src/srlab/zoo/<name>.json``: the record of
the run (command, config, commit, steps, wall time, speed, data, validation curve, scores
beside the paper's). ``report`` writes ``benchmarks/reproduce.md`` and the validation-curve
image ``benchmarks/reproduce_curves.png`` from the zoo's records alone, so nothing in the
report is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "src" / "srlab" / "zoo"
REPORT = REPO / "benchmarks" / "reproduce.md"
CURVES = REPO / "benchmarks" / "reproduce_curves.png"
SETS = ("set5", "set14", "bsd100")

# The papers' own numbers (Y channel, scale pixels shaved, MATLAB bicubic LR).
_FSRCNN = (
    "Dong, Loy and Tang, ECCV 2016: FSRCNN trained on 91 + General-100, with the SSIM that later "
    "papers print beside it. The PDF cannot be read on srlab's build machine: x2 was checked "
    "against two papers that reprint it (Chu et al., FALSR and MoreMNAS, 2019), Set5 x3 against "
    "the 543877815/cv_practise README; Set14 x3 is not cross-checked. The paper's model trained "
    "on the 91 images only scores 36.94 (x2) and 33.06 (x3) on Set5 (yjn870/FSRCNN-pytorch README)"
)
PAPER: dict[tuple[str, int], dict[str, Any]] = {
    ("fsrcnn", 2): {
        "source": _FSRCNN,
        "sets": {"Set5": {"psnr": 37.00, "ssim": 0.9558}, "Set14": {"psnr": 32.63, "ssim": 0.9088}},
    },
    ("fsrcnn", 3): {
        "source": _FSRCNN,
        "sets": {"Set5": {"psnr": 33.16, "ssim": 0.9140}, "Set14": {"psnr": 29.43, "ssim": 0.8242}},
    },
    ("espcn", 3): {
        "source": (
            "Shi et al., CVPR 2016, the model trained on the 91 images (Set5 x3 PSNR only), as "
            "quoted by the yjn870/ESPCN-pytorch port (the PDF cannot be read here)"
        ),
        "sets": {"Set5": {"psnr": 32.55, "ssim": None}},
    },
}
PROTOCOLS = {
    "paper": ["eval.lr_from=y"],  # the FSRCNN/SRCNN test code: Y of HR, downscaled in float
    "default": [],  # srlab's default: the 8-bit RGB LR of MATLAB bicubic, then Y
}


def _run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def _training_images(data_root: Path, config: dict) -> dict[str, Any]:
    """The training sets of the run, as found under ``data_root`` (names and image counts)."""
    from srlab.data.catalog import CATALOG
    from srlab.data.datasets import is_dataset_image

    train = config["data"]["train"]
    names = [train] if isinstance(train, str) else list(train)
    found = {}
    for name in names:
        images = [p for p in (data_root / CATALOG[name].hr_dir).iterdir() if is_dataset_image(p)]
        found[CATALOG[name].name] = {"images": len(images), "hr_dir": CATALOG[name].hr_dir}
    return found


def _curve(run_dir: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "step": row["step"],
            "wall_time_s": row["wall_time_s"],
            # val/<Set>/psnr of each validation set (not val/psnr, the monitored copy)
            **{k.split("/")[1]: v for k, v in row.items() if re.fullmatch(r"val/[^/]+/psnr", k)},
        }
        for row in rows
    ]


def _speed(run_dir: Path) -> float | None:
    """Median training patches/s of the run (Lightning's throughput monitor, CSV logger)."""
    csv = next(run_dir.glob("csv/*/metrics.csv"), None)
    if csv is None:
        return None
    lines = csv.read_text().splitlines()
    column = lines[0].split(",").index("train/device/samples_per_sec")
    values = [float(v[column]) for v in (line.split(",") for line in lines[1:]) if v[column]]
    return statistics.median(values) if values else None


def _evaluate(name: str, data_root: Path, overrides: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "src/eval.py",
            f"ckpt_path=zoo:{name}",
            f"data.root={data_root}",
            f"data.test_sets=[{','.join(SETS)}]",
            "data.lr=generate",
            *overrides,
            f"hydra.run.dir={out}",
        ]
        _run(command)
        results = json.loads((Path(out) / "results.json").read_text())
    shown = " ".join(c for c in command[1:] if not c.startswith("hydra.run.dir"))
    return {
        "command": f"python {shown}",
        "sets": {
            set_name: {"psnr": scores["psnr"], "ssim": scores["ssim"]}
            for set_name, scores in results["datasets"].items()
        },
    }


def package(
    run_dir: Path, name: str, data_root: Path, threads: str | None, note: str | None = None
) -> Path:
    """Export ``run_dir``'s final weights as zoo entry ``name`` and write its record.

    ``threads``: the ``OMP_NUM_THREADS`` the run had, and ``note`` what else the machine ran
    meanwhile (a run records neither).
    """
    from omegaconf import OmegaConf

    summary = json.loads((run_dir / "run.json").read_text())
    if summary.get("status") != "finished":
        raise SystemExit(f"{run_dir} did not finish (status {summary.get('status')!r})")
    config = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    weights = ZOO / f"{name}.safetensors"
    _run(
        [
            sys.executable,
            "src/export.py",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "format=safetensors",
            f"output={weights}",
        ]
    )
    model, scale = config["model"]["name"], int(config["scale"])
    # The record is written before scoring (zoo:<name> needs it), then completed.
    record_path = ZOO / f"{name}.json"
    record: dict[str, Any] = {
        "model": model,
        "scale": scale,
        "params": summary["params"],
        "weights": "final (last.ckpt), not the best validation step",
        "command": "python src/train.py " + " ".join(summary["overrides"]),
        "recipe": config.get("task_name"),
        "git_commit": summary.get("git_commit"),
        "git_dirty": summary.get("git_dirty"),
        "started": summary.get("started"),
        "steps": summary["steps"],
        "wall_time_s": summary["wall_time_s"],
        "patches_per_s": _speed(run_dir),
        "machine": {
            "cpu": _cpu_model(),
            "threads": threads or "not recorded",
            "note": note or "",
            "python": platform.python_version(),
        },
        "fine_tuned_from": config["model"].get("pretrained"),
        "data": {
            "train": _training_images(data_root, config),
            "downscaled_copies": config["data"].get("downscaled_copies"),
            "patch_size": config["data"]["patch_size"],
            "batch_size": config["data"]["batch_size"],
        },
        "config": {key: config[key] for key in ("model", "data", "trainer", "scale", "seed")},
        "curve": _curve(run_dir),
        "results": {"sets": {}, "command": ""},
        "paper": PAPER.get((model, scale), {}),
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    scored = {protocol: _evaluate(name, data_root, o) for protocol, o in PROTOCOLS.items()}
    record["results"] = scored["paper"]
    record["results_default_lr"] = scored["default"]
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size:,} bytes) and {record_path}")
    return record_path


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    model = fields.get("Model name", "unknown").strip()
    avx512 = "avx512_bf16" in fields.get("Flags", "")
    return f"{model}, {os.cpu_count()} cores, {'AVX-512 bf16' if avx512 else 'no AVX-512 bf16'}"


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_text() -> str:
    """The text of ``benchmarks/reproduce.md``, from every record in the zoo."""
    from srlab.zoo import entries

    zoo = entries()
    lines = [
        "# Reproductions: srlab's recipes against the papers' tables",
        "",
        "Written by `python benchmarks/reproduce.py report` from the records of the zoo",
        "(`src/srlab/zoo/<entry>.json`); nothing here is typed by hand. Y channel, `scale`",
        "pixels shaved, mean over images. *paper LR*: the authors' test code's input (the HR's Y",
        "downscaled in floating point, `eval.lr_from=y`); *8-bit LR*: srlab's default (the",
        "8-bit RGB MATLAB-bicubic LR, as in training). BSD100's LR is made from its HR.",
        "",
    ]
    for name, item in zoo.items():
        r = item.record
        paper = r.get("paper", {}).get("sets", {})
        hours = r["wall_time_s"] / 3600
        lines += [
            f"## `zoo:{name}`: {r['model']} x{r['scale']} ({r['params']:,} parameters)",
            "",
            f"- Command: `{r['command']}`",
            f"- Run: {r['steps']:,} steps in {r['wall_time_s']:.0f} s ({hours:.2f} h), "
            f"{_fmt(r['patches_per_s'], 0)} patches/s median "
            f"({r['data']['batch_size']} patches of {r['data']['patch_size']} HR px per step) "
            f"on {r['machine']['cpu']}, {r['machine']['threads']} thread(s)"
            + (f"; {r['machine']['note']}" if r["machine"].get("note") else ""),
            "- Data: "
            + ", ".join(f"{k} ({v['images']} images)" for k, v in r["data"]["train"].items())
            + _copies(r["data"].get("downscaled_copies"))
            + _skipped(r["config"]["data"]),
            *_lineage(r, zoo),
            f"- Commit: {r['git_commit']}" + (" (uncommitted changes)" if r["git_dirty"] else ""),
            f"- Scored by: `{r['results']['command']}`",
            f"- Paper: {r.get('paper', {}).get('source', 'none')}",
            "",
            "| set | srlab PSNR / SSIM (paper LR) | srlab PSNR / SSIM (8-bit LR) "
            "| paper PSNR / SSIM | gap (dB, paper LR) |",
            "|---|---|---|---|---|",
        ]
        for set_name, scores in r["results"]["sets"].items():
            other = r["results_default_lr"]["sets"][set_name]
            ref = paper.get(set_name)
            gap = f"{scores['psnr'] - ref['psnr']:+.2f}" if ref else "-"
            lines.append(
                f"| {set_name} | {scores['psnr']:.2f} / {scores['ssim']:.4f} "
                f"| {other['psnr']:.2f} / {other['ssim']:.4f} "
                f"| {_fmt(ref and ref['psnr'], 2)} / {_fmt(ref and ref['ssim'], 4)} | {gap} |"
            )
        lines.append("")
    lines += ["## Validation curves", "", f"![validation PSNR]({CURVES.name})", ""]
    return "\n".join(lines)


def _copies(factors: list[float] | None) -> str:
    return f", each also shrunk by {', '.join(map(str, factors))}" if factors else ""


def _skipped(data: dict) -> str:
    if data.get("on_bad_image") != "skip":
        return ""
    return (
        f"; any image or copy smaller than the {data['patch_size']}-pixel patch left out "
        "(`data.on_bad_image=skip`; the run's log names them)"
    )


def _lineage(record: dict, zoo: dict) -> list[str]:
    """The report's line on the weights a run started from, with the totals of every stage
    back to the run from scratch."""
    source = record.get("fine_tuned_from")
    if not source:
        return []
    chain, parent = [record], zoo.get(str(source).removeprefix("zoo:"))
    while parent is not None:
        chain.append(parent.record)
        above = parent.record.get("fine_tuned_from")
        parent = zoo.get(str(above).removeprefix("zoo:")) if above else None
    if len(chain) == 1:
        return [f"- Fine-tuned from: `{source}`"]
    stages = "both stages" if len(chain) == 2 else f"all {len(chain)} stages"
    steps = sum(r["steps"] for r in chain)
    hours = sum(r["wall_time_s"] for r in chain) / 3600
    return [
        f"- Fine-tuned from: `{source}` (its record is in this report); {stages}: "
        f"{steps:,} steps, {hours:.2f} h"
    ]


def report() -> None:
    """Write ``benchmarks/reproduce.md`` and the curve image from the zoo's records."""
    from srlab.zoo import entries

    REPORT.write_text(report_text())
    _plot(entries())
    print(f"wrote {REPORT} and {CURVES}")


def _plot(zoo: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(zoo), figsize=(5 * len(zoo), 3.6), squeeze=False)
    for ax, (name, item) in zip(axes[0], zoo.items(), strict=True):
        curve = item.record["curve"]
        for set_name in ("Set5", "Set14"):
            ax.plot([c["step"] for c in curve], [c[set_name] for c in curve], label=set_name)
            ref = item.record.get("paper", {}).get("sets", {}).get(set_name)
            if ref:
                ax.axhline(
                    ref["psnr"], linestyle="--", linewidth=0.8, color=ax.lines[-1].get_color()
                )
        ax.set_title(f"zoo:{name} (dashed: paper)")
        ax.set_xlabel("step")
        ax.set_ylabel("validation PSNR (dB, 8-bit LR)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(CURVES, dpi=90)


def main() -> None:
    """Command line: ``package <run dir> --name <entry> --data-root <root>`` or ``report``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("package", help="export a finished run as a zoo entry")
    pack.add_argument("run_dir", type=Path)
    pack.add_argument("--name", required=True, help="the entry's name, e.g. fsrcnn_x2")
    pack.add_argument("--data-root", type=Path, required=True, help="the run's data.root")
    pack.add_argument("--threads", help="the OMP_NUM_THREADS the run had, for the record")
    pack.add_argument("--note", help="what else ran on the machine meanwhile, for the record")
    commands.add_parser("report", help="write benchmarks/reproduce.md from the zoo's records")
    args = parser.parse_args()
    if args.command == "package":
        package(
            args.run_dir.resolve(), args.name, args.data_root.resolve(), args.threads, args.note
        )
    else:
        report()


if __name__ == "__main__":
    main()

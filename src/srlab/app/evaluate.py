"""Benchmark evaluation behind ``src/eval.py``: score a network (or a folder of SR images) on
evaluation sets by the literature's protocol, write ``results.json`` / ``results.md``, and
show every number beside the published one.

A network is scored by a Lightning test of :class:`srlab.tasks.SRTask` on the test sets of
``cfg.data`` (``data.test_sets``), exactly as training tests its best checkpoint: one code path
(:meth:`srlab.tasks.SRTask.evaluate_batch`), so ``results.json`` and a run's ``test/...``
metrics agree for the same weights. Folder scoring (``sr_dir=``) scores images made
elsewhere with the same metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from srlab.app.network import build_network
from srlab.data import SRDataModule, read_image
from srlab.data.datasets import to_tensor
from srlab.errors import ConfigError, DataError
from srlab.imaging import rgb_to_gray
from srlab.imaging.io import is_image_file
from srlab.metrics import psnr_y, ssim_y
from srlab.metrics.published import published
from srlab.runtime.config_check import check_targets
from srlab.tasks import SRTask
from srlab.tasks.evaluation import EvalOptions

log = logging.getLogger(__name__)

#: ``inference.precision`` -> Lightning's ``trainer.precision``.
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def eval_options(cfg: DictConfig, save_dir: Path | None = None) -> EvalOptions:
    """The protocol (``eval.*``) and forward pass (``inference.*``) of ``cfg``, checked."""
    protocol, inference = cfg.eval, cfg.inference
    options = EvalOptions(
        channel=protocol.channel,
        shave=protocol.shave,
        round_y=bool(protocol.round_y),
        lr_from=protocol.lr_from,
        tile=inference.tile or None,
        tile_overlap=int(inference.tile_overlap),
        self_ensemble=bool(inference.self_ensemble),
        save_dir=save_dir,
    )
    if options.lr_from == "y" and cfg.get("data") is not None and cfg.data.get("lr") == "files":
        raise ConfigError(
            "eval.lr_from=y makes LR from the HR's Y channel and never reads LR files, but "
            "data.lr=files asks for them: drop one of the two"
        )
    return options


def test_trainer(inference: DictConfig, output_dir: Path) -> L.Trainer:
    """A Trainer that only tests: ``inference.device`` and ``inference.precision``, no logger,
    no checkpoints."""
    precision = PRECISIONS.get(str(inference.precision))
    if precision is None:
        raise ConfigError(
            f"inference.precision={inference.precision!r}: use one of {', '.join(PRECISIONS)}"
        )
    device = str(inference.device)
    if device == "auto":
        accelerator, devices = "auto", 1
    elif device == "cpu":
        accelerator, devices = "cpu", 1
    elif device.startswith("cuda"):
        accelerator, devices = "gpu", [int(device.split(":")[1])] if ":" in device else 1
    else:
        raise ConfigError(f"inference.device={device!r}: use auto, cpu, cuda or cuda:<N>")
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(output_dir),
    )


def evaluate_network(cfg: DictConfig, options: EvalOptions) -> tuple[str, dict[str, Any]]:
    """Test the network of ``cfg`` on ``cfg.data``'s test sets; its name and the sets' results
    (mean and per-image PSNR/SSIM, and the bicubic baseline's)."""
    network = build_network(cfg)
    check_targets(cfg.data, "data")
    datamodule: SRDataModule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()  # downloads the sets when data.download is set
    datamodule.verify()  # every set located before the first image is scored
    if not datamodule.test_sets:
        raise ConfigError("data.test_sets is empty: list the sets to score, e.g. [set5,set14]")
    task = SRTask(network.net, name=network.name, num_log_images=0)
    task.configure_evaluation(options)
    trainer = test_trainer(cfg.inference, Path(cfg.paths.output_dir))
    trainer.test(task, datamodule=datamodule, verbose=False)
    metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
    datasets = {}
    for name in datamodule.test_set_names:
        datasets[name] = {
            "psnr": metrics[f"test/{name}/psnr"],
            "ssim": metrics[f"test/{name}/ssim"],
            "bicubic": {
                "psnr": metrics[f"test/{name}/psnr_bicubic"],
                "ssim": metrics[f"test/{name}/ssim_bicubic"],
            },
            "images": task.image_scores[name],
        }
    return network.name, datasets


# -- folder scoring ----------------------------------------------------------------------


def match_folders(sr_dir: Path, hr_dir: Path) -> list[tuple[Path, Path]]:
    """Pair each HR image with the SR image whose name starts with the HR name.

    ``baby_x2_SR.png`` belongs to ``baby.png``; when several HR names are prefixes of an SR
    name (``img_001``, ``img_0010``), the longest wins.

    Raises:
        DataError: a folder is missing or empty, or an HR image has no SR image or several.
    """
    for folder, key in ((sr_dir, "sr_dir"), (hr_dir, "hr_dir")):
        if not folder.is_dir():
            raise DataError(f"{key}={folder} is not a folder")
    hr_files = sorted(p for p in hr_dir.iterdir() if p.is_file() and is_image_file(p))
    sr_files = sorted(p for p in sr_dir.iterdir() if p.is_file() and is_image_file(p))
    if not hr_files or not sr_files:
        raise DataError(f"no images in {hr_dir if not hr_files else sr_dir}")
    matches: dict[Path, list[Path]] = {hr: [] for hr in hr_files}
    by_length = sorted(hr_files, key=lambda p: len(p.stem), reverse=True)
    for sr in sr_files:
        owner = next((hr for hr in by_length if sr.stem.startswith(hr.stem)), None)
        if owner is None:
            log.warning("%s matches no HR image in %s: ignored", sr, hr_dir)
        else:
            matches[owner].append(sr)
    missing = [hr.name for hr, found in matches.items() if not found]
    several = {hr.name: [p.name for p in found] for hr, found in matches.items() if len(found) > 1}
    if missing or several:
        raise DataError(
            f"cannot pair {sr_dir} with {hr_dir}: "
            + (f"no SR image for {missing}; " if missing else "")
            + (f"several SR images for {several}; " if several else "")
            + "SR file names must start with their HR file's name (baby.png -> baby_x2_SR.png)"
        )
    return [(found[0], hr) for hr, found in matches.items()]


def score_pair(
    sr: torch.Tensor, hr: torch.Tensor, scale: int, options: EvalOptions
) -> dict[str, float]:
    """PSNR and SSIM of one image pair ``[1, C, H, W]`` in [0, 1] by ``options``' protocol."""
    shave = scale if options.shave is None else options.shave
    protocol = {"channel": options.channel, "round_y": options.round_y}
    return {
        "psnr": float(psnr_y(sr, hr, shave, **protocol)[0]),
        "ssim": float(ssim_y(sr, hr, shave, **protocol)[0]),
    }


def score_folder(sr_dir: Path, hr_dir: Path, scale: int, options: EvalOptions) -> dict[str, Any]:
    """Score SR images made elsewhere against their HR images (mod-cropped when larger)."""
    images = {}
    for sr_path, hr_path in match_folders(sr_dir, hr_dir):
        sr, hr = read_image(sr_path), read_image(hr_path)
        if hr.shape[:2] != sr.shape[:2]:
            cropped = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
            if cropped.shape[:2] != sr.shape[:2]:
                raise DataError(
                    f"{sr_path} is {sr.shape[1]}x{sr.shape[0]} (WxH) but {hr_path} is "
                    f"{hr.shape[1]}x{hr.shape[0]} ({cropped.shape[1]}x{cropped.shape[0]} "
                    f"mod-cropped to x{scale}): check scale={scale} and the files"
                )
            hr = cropped
        sr_t, hr_t = to_tensor(sr)[None], to_tensor(hr)[None]
        if hr_t.shape[1] == 1 and sr_t.shape[1] == 3:
            sr_t = rgb_to_gray(sr_t)  # a gray image saved as RGB by another tool
        elif hr_t.shape[1] == 3 and sr_t.shape[1] == 1:
            sr_t = sr_t.expand(-1, 3, -1, -1)
        images[hr_path.stem] = score_pair(sr_t, hr_t, scale, options)
    return {
        "psnr": float(np.mean([v["psnr"] for v in images.values()])),
        "ssim": float(np.mean([v["ssim"] for v in images.values()])),
        "images": images,
    }


# -- reporting ---------------------------------------------------------------------------


def add_published(results: dict[str, Any]) -> None:
    """Add the published value of the same method, set and scale to each set, when known."""
    for set_name, entry in results["datasets"].items():
        reference = published(results["model"], set_name, results["scale"])
        if reference is not None and results["protocol"] == "y-shave-scale":
            entry["published"] = {
                "psnr": reference.psnr,
                "ssim": reference.ssim,
                "source": reference.source,
            }


def results_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of set, PSNR, SSIM, published PSNR/SSIM and their differences."""
    rows = []
    for set_name, entry in results["datasets"].items():
        ref = entry.get("published")
        row = [set_name, f"{entry['psnr']:.2f}", f"{entry['ssim']:.4f}"]
        if ref:
            row += [
                f"{ref['psnr']:.2f}",
                f"{ref['ssim']:.4f}",
                f"{entry['psnr'] - ref['psnr']:+.2f}",
                f"{entry['ssim'] - ref['ssim']:+.4f}",
            ]
        else:
            row += ["-"] * 4
        rows.append(row)
    return rows


HEADER = ["set", "PSNR", "SSIM", "published PSNR", "published SSIM", "diff PSNR", "diff SSIM"]


def results_markdown(results: dict[str, Any]) -> str:
    """results.md: the summary table, its sources, then per-image scores."""
    title = f"# {results['model']} x{results['scale']} ({results['protocol']})\n\n"
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in results_rows(results)]
    sources = sorted(
        {e["published"]["source"] for e in results["datasets"].values() if "published" in e}
    )
    text = title + "\n".join(lines) + "\n"
    if sources:
        text += "\nPublished values: " + "; ".join(sources) + ".\n"
    for set_name, entry in results["datasets"].items():
        text += f"\n## {set_name}\n\n| image | PSNR | SSIM |\n|---|---|---|\n"
        text += "".join(
            f"| {name} | {v['psnr']:.2f} | {v['ssim']:.4f} |\n"
            for name, v in entry["images"].items()
        )
    return text


def print_results(results: dict[str, Any]) -> None:
    """Print the summary table."""
    table = Table(title=f"{results['model']} x{results['scale']} ({results['protocol']})")
    for column in HEADER:
        table.add_column(column, justify="left" if column == "set" else "right")
    for row in results_rows(results):
        table.add_row(*row)
    Console().print(table)


def write_results(results: dict[str, Any], output_dir: Path) -> None:
    """Write results.json and results.md into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (output_dir / "results.md").write_text(results_markdown(results))


# -- entry point -------------------------------------------------------------------------


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate the network of ``cfg`` on ``cfg.data.test_sets`` (or score ``sr_dir`` against
    ``hr_dir``).

    Returns the results dict that is also written to ``<output_dir>/results.json``.
    """
    output_dir = Path(cfg.paths.output_dir)
    save_dir = output_dir / "images" if cfg.eval.save_images else None
    options = eval_options(cfg, save_dir)
    extra: dict[str, Any] = {}
    if cfg.get("sr_dir"):
        if not cfg.get("hr_dir"):
            raise ConfigError("folder scoring needs hr_dir=<folder of HR images> with sr_dir")
        if cfg.get("scale") is None:
            raise ConfigError("folder scoring needs scale=<2|3|4> (the border it shaves)")
        hr_dir = Path(cfg.hr_dir)
        entry = score_folder(Path(cfg.sr_dir), hr_dir, int(cfg.scale), options)
        model_name, datasets = cfg.get("method") or "folder", {hr_dir.name: entry}
    else:
        model_name, datasets = evaluate_network(cfg, options)
        extra = {"lr_from": options.lr_from}
    results = {"scale": int(cfg.scale), "model": model_name, "protocol": options.protocol}
    results.update(extra)
    results["datasets"] = datasets
    add_published(results)
    write_results(results, output_dir)
    print_results(results)
    Console().print(f"results:  {output_dir / 'results.json'}", soft_wrap=True)
    return results

"""Benchmark evaluation behind ``src/eval.py``: score a network (or a folder of SR images) on
evaluation sets by the literature's protocol, write ``results.json`` / ``results.md``, and
show every number beside the published one.

A network is scored by a Lightning test of :class:`srlab.tasks.SRTask` on the test sets of
``cfg.data`` (``data.test_sets``), exactly as training tests its best checkpoint: one code path
(:meth:`srlab.tasks.SRTask.evaluate_batch`), so ``results.json`` and a run's ``test/...``
metrics agree for the same weights. Folder scoring (``sr_dir=``) scores images made
elsewhere with the same metrics. Real LR images without HR (``lr_dir=``), or SR images
without HR (``sr_dir=`` alone), are scored by no-reference metrics only (NIQE), and the output
says so.
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
from srlab.imaging import imresize, rgb_to_gray
from srlab.imaging.io import is_image_file
from srlab.imaging.predict import autocast_dtype, make_predictor, resolve_device
from srlab.metrics import psnr_y, ssim_y
from srlab.metrics.perceptual import NO_REFERENCE, PerceptualMetrics
from srlab.metrics.published import published
from srlab.runtime.config_check import check_targets
from srlab.tasks import SRTask
from srlab.tasks.evaluation import EvalOptions, save_image

log = logging.getLogger(__name__)

#: What results.json and the printed table say when no HR image exists to compare with.
NO_REFERENCE_NOTE = (
    "no HR images: scored by no-reference metrics only ({names}); PSNR, SSIM, LPIPS and DISTS "
    "need HR images"
)

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
        tile=inference.tile,
        tile_overlap=int(inference.tile_overlap),
        self_ensemble=bool(inference.self_ensemble),
        memory_budget_gb=inference.get("memory_budget_gb"),
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


def evaluate_network(
    cfg: DictConfig, options: EvalOptions, perceptual: PerceptualMetrics | None = None
) -> tuple[str, dict[str, Any]]:
    """Test the network of ``cfg`` on ``cfg.data``'s test sets; its name and the sets' results
    (mean and per-image PSNR/SSIM and the ``perceptual`` metrics, and the bicubic
    baseline's)."""
    perceptual = perceptual or PerceptualMetrics()
    network = build_network(cfg)
    check_targets(cfg.data, "data")
    datamodule: SRDataModule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()  # downloads the sets when data.download is set
    datamodule.verify()  # every set located before the first image is scored
    if not datamodule.test_sets:
        raise ConfigError("data.test_sets is empty: list the sets to score, e.g. [set5,set14]")
    task = SRTask(network.net, name=network.name, num_log_images=0)
    task.configure_evaluation(options)
    task.configure_metrics(perceptual)
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
        for metric in perceptual.perceptual:
            datasets[name][metric] = metrics[f"test/{name}/{metric}"]
            datasets[name]["bicubic"][metric] = metrics[f"test/{name}/{metric}_bicubic"]
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
    sr: torch.Tensor,
    hr: torch.Tensor,
    scale: int,
    options: EvalOptions,
    scorers: dict[str, torch.nn.Module] | None = None,
) -> dict[str, float]:
    """PSNR and SSIM of one image pair ``[1, C, H, W]`` in [0, 1] by ``options``' protocol,
    and the perceptual ``scorers``' scores (``{name: LPIPS/DISTS/NIQE network}``)."""
    shave = scale if options.shave is None else options.shave
    protocol = {"channel": options.channel, "round_y": options.round_y}
    scores = {
        "psnr": float(psnr_y(sr, hr, shave, **protocol)[0]),
        "ssim": float(ssim_y(sr, hr, shave, **protocol)[0]),
    }
    for name, metric in PerceptualMetrics.metrics(scorers or {}).items():
        metric.update(sr, hr)
        scores[name] = float(metric.compute())
    return scores


def _mean_scores(images: dict[str, dict[str, float]]) -> dict[str, float]:
    """The mean over images of every score the images have."""
    names = next(iter(images.values())).keys()
    return {name: float(np.mean([v[name] for v in images.values()])) for name in names}


def score_folder(
    sr_dir: Path,
    hr_dir: Path,
    scale: int,
    options: EvalOptions,
    scorers: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Score SR images made elsewhere against their HR images (mod-cropped when larger),
    with PSNR, SSIM and the perceptual ``scorers``."""
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
        images[hr_path.stem] = score_pair(sr_t, hr_t, scale, options, scorers)
    return {**_mean_scores(images), "images": images}


# -- no reference: real LR, or SR without HR ---------------------------------------------


def image_files(folder: Path, key: str) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted.

    Raises:
        DataError: ``folder`` is not a folder or holds no image (``key`` names the option).
    """
    if not folder.is_dir():
        raise DataError(f"{key}={folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if not files:
        raise DataError(f"{key}={folder} holds no image files")
    return files


def no_reference_scorers(perceptual: PerceptualMetrics) -> dict[str, torch.nn.Module]:
    """The no-reference metrics of ``perceptual`` (NIQE when none is listed), built; the
    full-reference ones listed are left out with a warning, as there is no HR image."""
    skipped = perceptual.full_reference
    if skipped:
        log.warning("no HR images: %s not scored (they compare with HR)", ", ".join(skipped))
    return perceptual.scorers(perceptual.no_reference or NO_REFERENCE)


def _score_alone(image: torch.Tensor, scorers: dict[str, torch.nn.Module]) -> dict[str, float]:
    scores = {}
    for name, metric in PerceptualMetrics.metrics(scorers, reference=False).items():
        metric.update(image)
        scores[name] = float(metric.compute())
    return scores


def score_sr_alone(sr_dir: Path, scorers: dict[str, torch.nn.Module]) -> dict[str, Any]:
    """No-reference scores of SR images made elsewhere (``sr_dir=`` without ``hr_dir=``)."""
    images = {
        path.stem: _score_alone(to_tensor(read_image(path))[None], scorers)
        for path in image_files(sr_dir, "sr_dir")
    }
    return {**_mean_scores(images), "images": images}


def evaluate_real_lr(
    cfg: DictConfig, options: EvalOptions, scorers: dict[str, torch.nn.Module]
) -> tuple[str, int, dict[str, Any]]:
    """Super-resolve every LR image of ``cfg.lr_dir`` (real photos, no HR) with the network of
    ``cfg`` and score SR and the MATLAB-bicubic upscale with the no-reference ``scorers``.

    The network runs as ``src/infer.py`` runs it (``inference.device``, ``precision``,
    ``tile``, ``tile_overlap``, ``self_ensemble``); with ``eval.save_images`` the SR images are
    written to ``<output_dir>/images/<folder>/``. Returns the model's name, its scale and the
    folder's results.
    """
    lr_dir = Path(cfg.lr_dir)
    files = image_files(lr_dir, "lr_dir")
    network = build_network(cfg)
    inference = cfg.inference
    device = resolve_device(str(inference.device))
    net = network.net.to(device).eval()
    predict = make_predictor(
        net,
        network.scale,
        tile=options.tile,
        tile_overlap=options.tile_overlap,
        ensemble=options.self_ensemble,
        dtype=autocast_dtype(str(inference.precision), device),
        memory_budget_gb=options.memory_budget_gb,
    )
    images, bicubic = {}, {}
    for path in files:
        lr = to_tensor(read_image(path))[None].to(device)
        with torch.no_grad():
            sr = predict(lr).clamp(0, 1)
            upscaled = imresize(lr, scale=network.scale).clamp(0, 1)
        images[path.stem] = _score_alone(sr, scorers)
        bicubic[path.stem] = _score_alone(upscaled, scorers)
        if options.save_dir is not None:
            save_image(sr.cpu(), Path(options.save_dir) / lr_dir.name / f"{path.stem}.png")
    entry = {**_mean_scores(images), "bicubic": _mean_scores(bicubic), "images": images}
    return network.name, network.scale, entry


# -- reporting ---------------------------------------------------------------------------


def add_published(results: dict[str, Any]) -> None:
    """Add the published value of the same method, set and scale to each set, when known."""
    if "psnr" not in results["metrics"]:
        return
    for set_name, entry in results["datasets"].items():
        reference = published(results["model"], set_name, results["scale"])
        if reference is not None and results["protocol"] == "y-shave-scale":
            entry["published"] = {
                "psnr": reference.psnr,
                "ssim": reference.ssim,
                "source": reference.source,
            }


def results_header(results: dict[str, Any]) -> list[str]:
    """The columns of the summary table: PSNR/SSIM beside the published values (when HR
    exists), then each perceptual metric, and its bicubic value where one was scored."""
    header = ["set"]
    if "psnr" in results["metrics"]:
        header += list(HEADER[1:])
    for name in results["metrics"]:
        if name not in ("psnr", "ssim"):
            header.append(name.upper())
            if any(name in e.get("bicubic", {}) for e in results["datasets"].values()):
                header.append(f"bicubic {name.upper()}")
    return header


def results_rows(results: dict[str, Any]) -> list[list[str]]:
    """Rows of set, PSNR, SSIM, published PSNR/SSIM and their differences, and the
    perceptual metrics (SR, then bicubic)."""
    rows = []
    perceptual = [n for n in results["metrics"] if n not in ("psnr", "ssim")]
    for set_name, entry in results["datasets"].items():
        row = [set_name]
        if "psnr" in results["metrics"]:
            ref = entry.get("published")
            row += [f"{entry['psnr']:.2f}", f"{entry['ssim']:.4f}"]
            if ref:
                row += [
                    f"{ref['psnr']:.2f}",
                    f"{ref['ssim']:.4f}",
                    f"{entry['psnr'] - ref['psnr']:+.2f}",
                    f"{entry['ssim'] - ref['ssim']:+.4f}",
                ]
            else:
                row += ["-"] * 4
        for name in perceptual:
            row.append(f"{entry[name]:.4f}")
            if any(name in e.get("bicubic", {}) for e in results["datasets"].values()):
                value = entry.get("bicubic", {}).get(name)
                row.append("-" if value is None else f"{value:.4f}")
        rows.append(row)
    return rows


HEADER = ["set", "PSNR", "SSIM", "published PSNR", "published SSIM", "diff PSNR", "diff SSIM"]


def results_markdown(results: dict[str, Any]) -> str:
    """results.md: the summary table, its sources, then per-image scores."""
    title = f"# {results['model']} x{results['scale']} ({results['protocol']})\n\n"
    if results.get("note"):
        title += f"{results['note']}.\n\n"
    header = results_header(results)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in results_rows(results)]
    sources = sorted(
        {e["published"]["source"] for e in results["datasets"].values() if "published" in e}
    )
    text = title + "\n".join(lines) + "\n"
    if sources:
        text += "\nPublished values: " + "; ".join(sources) + ".\n"
    digits = {"psnr": ".2f"}
    for set_name, entry in results["datasets"].items():
        names = results["metrics"]
        text += f"\n## {set_name}\n\n| image | " + " | ".join(n.upper() for n in names) + " |\n"
        text += "|---|" + "---|" * len(names) + "\n"
        text += "".join(
            f"| {image} | " + " | ".join(format(v[n], digits.get(n, ".4f")) for n in names) + " |\n"
            for image, v in entry["images"].items()
        )
    return text


def print_results(results: dict[str, Any]) -> None:
    """Print the summary table."""
    table = Table(title=f"{results['model']} x{results['scale']} ({results['protocol']})")
    for column in results_header(results):
        table.add_column(column, justify="left" if column == "set" else "right")
    for row in results_rows(results):
        table.add_row(*row)
    Console().print(table)
    if results.get("note"):
        Console().print(f"{results['note']}.", soft_wrap=True)


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
    perceptual = PerceptualMetrics.from_config(cfg.get("metrics"))
    extra: dict[str, Any] = {}
    metrics = ["psnr", "ssim", *perceptual.perceptual]
    scale = cfg.get("scale")
    if cfg.get("lr_dir") and cfg.get("sr_dir"):
        raise ConfigError(
            "lr_dir= (real LR images to super-resolve) and sr_dir= (SR images made elsewhere) "
            "are two different evaluations: set one"
        )
    if cfg.get("lr_dir") or (cfg.get("sr_dir") and not cfg.get("hr_dir")):
        scorers = no_reference_scorers(perceptual)
        metrics = list(scorers)
        extra = {"reference": "none", "note": NO_REFERENCE_NOTE.format(names=", ".join(metrics))}
        if cfg.get("lr_dir"):
            model_name, scale, entry = evaluate_real_lr(cfg, options, scorers)
            folder = Path(cfg.lr_dir)
        else:
            folder = Path(cfg.sr_dir)
            model_name, entry = cfg.get("method") or "folder", score_sr_alone(folder, scorers)
        datasets = {folder.name: entry}
    elif cfg.get("sr_dir"):
        if scale is None:
            raise ConfigError("folder scoring needs scale=<2|3|4> (the border it shaves)")
        hr_dir = Path(cfg.hr_dir)
        scorers = perceptual.scorers()
        entry = score_folder(Path(cfg.sr_dir), hr_dir, int(scale), options, scorers)
        model_name, datasets = cfg.get("method") or "folder", {hr_dir.name: entry}
    else:
        model_name, datasets = evaluate_network(cfg, options, perceptual)
        extra = {"lr_from": options.lr_from}
        scale = cfg.scale  # the checkpoint's, when the config left it null
    results = {
        "scale": None if scale is None else int(scale),
        "model": model_name,
        "protocol": options.protocol,
        "metrics": metrics,
    }
    results.update(extra)
    results["datasets"] = datasets
    add_published(results)
    write_results(results, output_dir)
    print_results(results)
    Console().print(f"results:  {output_dir / 'results.json'}", soft_wrap=True)
    return results

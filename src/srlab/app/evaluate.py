"""Benchmark evaluation behind ``src/eval.py``: score a model (or a folder of SR images) on
evaluation sets by the literature's protocol, write ``results.json`` / ``results.md``, and
show every number beside the published one."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch import nn

from srlab.data import get_image_set, list_pairs, load_pair, read_image
from srlab.data.datasets import to_tensor
from srlab.errors import ConfigError, DataError
from srlab.imaging import imresize, rgb_to_gray
from srlab.imaging.io import is_image_file, write_image
from srlab.imaging.predict import make_predictor, resolve_device
from srlab.metrics import psnr_y, quantize, ssim_y, to_y255
from srlab.metrics.published import published
from srlab.runtime.config_check import check_targets
from srlab.weights import load_pretrained

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    """How SR images are scored (README, "Evaluation protocol"); the defaults are the literature's.

    Args:
        channel: ``y`` (MATLAB's Y) or ``rgb``.
        shave: border pixels removed on every side; None means the scale.
        round_y: round Y to 8-bit levels first (MATLAB ``rgb2ycbcr`` on uint8; older papers).
    """

    channel: str = "y"
    shave: int | None = None
    round_y: bool = False

    def __post_init__(self) -> None:
        if self.channel not in ("y", "rgb"):
            raise ConfigError(f"eval.channel={self.channel!r}: use 'y' or 'rgb'")

    @property
    def name(self) -> str:
        """A short name recorded in results.json, e.g. ``y-shave-scale``."""
        shave = "scale" if self.shave is None else str(self.shave)
        return f"{self.channel}{'8' if self.round_y else ''}-shave-{shave}"

    def score(self, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> tuple[float, float]:
        """PSNR and SSIM of one image pair [1, C, H, W] in [0, 1]."""
        shave = scale if self.shave is None else self.shave
        options = {"channel": self.channel, "round_y": self.round_y}
        return (
            float(psnr_y(sr, hr, shave, **options)[0]),
            float(ssim_y(sr, hr, shave, **options)[0]),
        )


# Where the network's LR input comes from (eval.lr_from): "rgb", the set's 8-bit RGB LR (files
# or MATLAB bicubic of the RGB HR); "y", the Y channel of HR downscaled in floating point.
LR_FROM = ("rgb", "y")


def y_channel_pair(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HR and LR of one image as the SRCNN and VDSR test code make them (``eval.lr_from=y``).

    HR becomes its Y channel as MATLAB's ``rgb2ycbcr`` gives it for a uint8 image (rounded to
    8 bits; a grayscale image is its own Y), and LR is ``imresize(Y, 1/scale)`` kept in floating
    point, not saved to 8 bits. The published bicubic, SRCNN and VDSR tables were computed on
    this pair: it reproduces their bicubic Set5 rows to every printed digit, where the RGB LR
    files land 0.01-0.02 dB higher (``tests/test_published_weights.py``).

    Args:
        hr: the 8-bit HR image ``[1, C, H, W]`` in [0, 1], mod-cropped to ``scale``; C 1 or 3.
        scale: the SR scale.

    Returns:
        ``(y_hr, y_lr)``: ``[1, 1, H, W]`` and ``[1, 1, H / scale, W / scale]``, dtype of ``hr``.
    """
    y_hr = to_y255(hr, round_y=True).to(hr.dtype) / 255
    return y_hr, imresize(y_hr, scale=1 / scale)


def check_lr_from(options: DictConfig) -> str:
    """``eval.lr_from``, checked against the options it cannot be combined with."""
    lr_from = options.get("lr_from", "rgb")
    if lr_from not in LR_FROM:
        raise ConfigError(f"eval.lr_from={lr_from!r}: use one of {LR_FROM}")
    if lr_from == "y" and options.channel != "y":
        raise ConfigError(
            f"eval.lr_from=y super-resolves and scores the Y channel alone, so "
            f"eval.channel={options.channel!r} cannot be scored: use eval.lr_from=rgb for it"
        )
    if lr_from == "y" and options.lr == "files":
        raise ConfigError(
            "eval.lr_from=y makes LR from the HR's Y channel and never reads LR files, but "
            "eval.lr=files asks for them: drop one of the two"
        )
    return lr_from


def summarize(images: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Mean PSNR/SSIM over images (the literature's mean of per-image values)."""
    return {
        "psnr": float(np.mean([v["psnr"] for v in images.values()])),
        "ssim": float(np.mean([v["ssim"] for v in images.values()])),
        "images": images,
    }


# -- model evaluation --------------------------------------------------------------------


def build_net(cfg: DictConfig) -> nn.Module:
    """The network of ``cfg.model`` with the weights of ``ckpt`` or ``model.pretrained``."""
    check_targets(cfg.model, "model")
    net: nn.Module = instantiate(cfg.model.net, _convert_="all")
    weights = cfg.get("ckpt") or cfg.model.get("pretrained")
    if weights:
        load_pretrained(net, weights, ignore=cfg.model.get("pretrained_ignore") or ())
    elif any(True for _ in net.parameters()):
        raise ConfigError(
            f"{type(net).__name__} has weights to learn: give them with ckpt=<checkpoint> or "
            "model.pretrained=<path or URL> (model=bicubic needs none)"
        )
    return net.eval()


def predictor(
    net: nn.Module, scale: int, tile: int | None, overlap: int, ensemble: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """LR -> SR for whole images, with optional tiling and x8 self-ensemble."""
    return make_predictor(net, scale, tile, overlap, ensemble)


def evaluate_set(
    predict: Callable[[torch.Tensor], torch.Tensor],
    pairs: Iterable,
    scale: int,
    protocol: Protocol,
    device: torch.device,
    save_dir: Path | None = None,
    lr_from: str = "rgb",
) -> dict[str, Any]:
    """Super-resolve and score every image pair of one set (``lr_from``: see ``LR_FROM``)."""
    images = {}
    for pair in pairs:
        hr, lr = (to_tensor(a)[None].to(device) for a in load_pair(pair, scale, channels=None))
        if lr_from == "y":
            hr, lr = y_channel_pair(hr, scale)
        with torch.inference_mode():
            sr = predict(lr).clamp(0, 1)
        psnr, ssim = protocol.score(sr, hr, scale)
        images[pair.name] = {"psnr": psnr, "ssim": ssim}
        if save_dir is not None:
            save_image(sr, save_dir / f"{pair.name}.png")
    return summarize(images)


def save_image(image: torch.Tensor, path: Path) -> None:
    """Save a [1, C, H, W] image in [0, 1] as an 8-bit PNG (1 channel stays grayscale)."""
    write_image(path, quantize(image[0]).to(torch.uint8).permute(1, 2, 0).cpu().numpy())


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


def score_folder(sr_dir: Path, hr_dir: Path, scale: int, protocol: Protocol) -> dict[str, Any]:
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
        psnr, ssim = protocol.score(sr_t, hr_t, scale)
        images[hr_path.stem] = {"psnr": psnr, "ssim": ssim}
    return summarize(images)


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
    """Evaluate ``cfg.model`` on ``cfg.eval.sets`` (or score ``sr_dir`` against ``hr_dir``).

    Returns the results dict that is also written to ``<output_dir>/results.json``.
    """
    scale, options = int(cfg.scale), cfg.eval
    protocol = Protocol(options.channel, options.shave, options.round_y)
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("sr_dir"):
        if not cfg.get("hr_dir"):
            raise ConfigError("folder scoring needs hr_dir=<folder of HR images> with sr_dir")
        hr_dir = Path(cfg.hr_dir)
        entry = score_folder(Path(cfg.sr_dir), hr_dir, scale, protocol)
        model_name, datasets = cfg.get("method") or "folder", {hr_dir.name: entry}
        lr_source = {}
    else:
        lr_from = check_lr_from(options)
        model_name = _model_name(cfg)
        datasets = evaluate_model(cfg, scale, protocol, output_dir, lr_from)
        lr_source = {"lr_from": lr_from}
    results = {"scale": scale, "model": model_name, "protocol": protocol.name, **lr_source}
    results["datasets"] = datasets
    add_published(results)
    write_results(results, output_dir)
    print_results(results)
    Console().print(f"results:  {output_dir / 'results.json'}", soft_wrap=True)
    return results


def evaluate_model(
    cfg: DictConfig, scale: int, protocol: Protocol, output_dir: Path, lr_from: str = "rgb"
) -> dict[str, Any]:
    """Evaluate the model of ``cfg`` on every set of ``cfg.eval.sets``, LR from ``lr_from``."""
    options = cfg.eval
    device = _device(options.device)
    net = build_net(cfg).to(device)
    if getattr(net, "upscale", scale) != scale:
        raise ConfigError(f"the network upsamples x{net.upscale} but scale={scale}")
    predict = predictor(net, scale, options.tile, options.tile_overlap, options.self_ensemble)
    image_sets = [get_image_set(spec) for spec in _as_list(options.sets)]
    root, cache_dir = Path(cfg.data_root), cfg.paths.get("cache_dir")
    if options.get("download"):
        from srlab.data.download import download_sets

        download_sets(image_sets, root, scales=[scale])
    # List every set before the first image is scored: a missing set fails at once.
    pairs = {s.name: list_pairs(s, root, scale, options.lr, cache_dir) for s in image_sets}
    datasets = {}
    for name, set_pairs in pairs.items():
        save_dir = output_dir / "images" / name if options.save_images else None
        datasets[name] = evaluate_set(
            predict, set_pairs, scale, protocol, device, save_dir, lr_from
        )
    return datasets


def _model_name(cfg: DictConfig) -> str:
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("model", "model")
    return "model"


def _device(name: str) -> torch.device:
    return resolve_device(name)


def _as_list(value: Any) -> Sequence:
    return [value] if isinstance(value, str | dict | DictConfig) else list(value)

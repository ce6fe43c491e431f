"""Look at degraded samples of one image before training: ``python -m srlab.data.degrade``.

``python -m srlab.data.degrade photo.png --out degraded/ [key=value ...]`` cuts the centre
``--crop`` pixels of the image, degrades them ``--samples`` times with Real-ESRGAN's model
(seeds ``--seed``, ``--seed + 1``, ...; the same draw as training's for those degradation
seeds) and writes ``grid.png`` (the HR crop first, then each LR nearest-upscaled to the HR
size), every LR as ``lr_<k>.png`` and the drawn parameters as ``params.csv``. ``key=value``
pairs override the settings as ``data.degradation.<key>=<value>`` would
(``first.noise_range=[1,10]``, ``final.sinc_prob=0``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from srlab.data.degradations import RealESRGANDegradation, degradation_config
from srlab.data.degradations.preview import DegradationPreview
from srlab.errors import ConfigError, SRLabError
from srlab.imaging.io import read_image, write_image


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m srlab.data.degrade",
        description="Write a grid of Real-ESRGAN-degraded samples of one image.",
    )
    parser.add_argument("image", type=Path, help="an image file")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--samples", type=int, default=8, help="degraded samples (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="degradation seed of the first")
    parser.add_argument("--scale", type=int, default=4, help="SR scale: LR is HR / scale")
    parser.add_argument(
        "--crop", type=int, default=256, help="HR centre crop side in pixels (0: whole image)"
    )
    parser.add_argument("--columns", type=int, default=3, help="tiles per grid row")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings of conf/data/degradation/realesrgan.yaml, e.g. first.noise_range=[1,10]",
    )
    args = parser.parse_intermixed_args(argv)
    if args.samples < 1 or args.scale < 1 or args.columns < 1 or args.crop < 0:
        parser.error("--samples, --scale and --columns must be >= 1 and --crop >= 0")
    return args


def settings(overrides: list[str]):
    """The degradation settings with ``key=value`` overrides (OmegaConf dot-list syntax)."""
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise ConfigError(f"overrides must be key=value, got {bad}: e.g. first.noise_range=[1,10]")
    return degradation_config(OmegaConf.to_container(OmegaConf.from_dotlist(overrides)))


def hr_crop(image: np.ndarray, crop: int, scale: int) -> torch.Tensor:
    """The centre ``crop`` pixels (whole image for 0) as [1, 3, H, W] in [0, 1], H and W
    multiples of ``scale``."""
    height, width = image.shape[:2]
    side_h = min(crop or height, height) // scale * scale
    side_w = min(crop or width, width) // scale * scale
    if side_h < scale or side_w < scale:
        raise ConfigError(f"the image ({width}x{height}) is smaller than the scale {scale}")
    top, left = (height - side_h) // 2, (width - side_w) // 2
    patch = image[top : top + side_h, left : left + side_w]
    if patch.shape[2] == 1:
        patch = np.repeat(patch, 3, axis=2)
    tensor = torch.from_numpy(np.ascontiguousarray(patch[..., :3].transpose(2, 0, 1)))
    return tensor.float().div(255)[None]


def grid(hr: torch.Tensor, lr: torch.Tensor, columns: int) -> np.ndarray:
    """uint8 picture: HR, then every LR nearest-upscaled to its size, ``columns`` per row."""
    tiles = [hr[0]] + list(F.interpolate(lr, size=hr.shape[-2:], mode="nearest"))
    while len(tiles) % columns:
        tiles.append(torch.ones_like(hr[0]))
    rows = [torch.cat(tiles[i : i + columns], dim=-1) for i in range(0, len(tiles), columns)]
    picture = torch.cat(rows, dim=-2)
    return (picture.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (1 with a one-line error on bad input)."""
    args = parse_args(argv)
    try:
        degrade = RealESRGANDegradation(settings(args.overrides))
        hr = hr_crop(read_image(args.image), args.crop, args.scale).to(args.device)
        seeds = list(range(args.seed, args.seed + args.samples))
        lr, _, params = degrade.degrade_seeds(hr.expand(len(seeds), -1, -1, -1), seeds, args.scale)
    except SRLabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_image(args.out / "grid.png", grid(hr.cpu(), lr.cpu(), args.columns))
    for index in range(len(seeds)):
        image = (lr[index].cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        write_image(args.out / f"lr_{index:02d}.png", image.numpy())
    names = [f"{args.image.stem}@seed{seed}" for seed in seeds]
    batch_hr = hr.expand(len(seeds), -1, -1, -1)
    preview = DegradationPreview.of_batch(lr, batch_hr, params, names, 0, limit=None)
    preview.write_csv(args.out / "params.csv")
    print(f"wrote {args.out / 'grid.png'} (HR, then {len(seeds)} LR), lr_*.png and params.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())

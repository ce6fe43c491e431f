"""Known image sets: where each lives under ``data.root`` and how its LR files are named.

An evaluation or training set is an :class:`ImageSet`: a folder of HR images, an
optional folder of LR images per scale, and the rule that names an LR file after its HR
file. ``data.val_sets`` and ``data.train`` name sets of this catalog (case-insensitive:
``set5``, ``Set5``) or describe a folder of their own as a mapping with the fields of
:class:`ImageSet`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from srlab.errors import ConfigError, DatasetNotFoundError

SKIMAGE_DATA_DIR = "<skimage>"
"""Placeholder root of the photos that scikit-image ships inside its package."""


@dataclass(frozen=True)
class ImageSet:
    """A set of HR images with optional LR counterparts.

    Args:
        name: the name metrics are logged under (``val/<name>/psnr``); for the benchmark
            sets the folder name of the literature (``Set5``, ``BSD100``).
        hr_dir: folder of HR images, relative to ``data.root`` unless absolute.
        lr_dir: folder of LR images for a scale, with ``{scale}`` in it
            (``Set5/LR_bicubic/X{scale}``); None, or a folder that does not exist for a
            scale, means that LR is made from HR by MATLAB bicubic.
        lr_name: file name of the LR image of an HR file, from ``{stem}``, ``{scale}``,
            ``{ext}`` (``{stem}x{scale}{ext}`` for ``babyx2.png``).
        files: only these HR file names, in this order (None: every image in ``hr_dir``).
        source: how to get the set, shown when it is missing.
    """

    name: str
    hr_dir: str
    lr_dir: str | None = None
    lr_name: str = "{stem}{ext}"
    files: tuple[str, ...] | None = None
    source: str = ""

    def hr_path(self, root: Path) -> Path:
        """The HR folder, resolved against ``root``."""
        return _resolve(self.hr_dir, root)

    def lr_path(self, root: Path, scale: int) -> Path | None:
        """The LR folder for ``scale``, resolved against ``root`` (None if the set has none)."""
        return None if self.lr_dir is None else _resolve(self.lr_dir.format(scale=scale), root)

    def layout(self, root: Path) -> str:
        """The expected folder layout, for error messages."""
        lines = [f"  {self.hr_path(root)}/<name>.png   (HR images)"]
        if self.lr_dir is not None:
            lr_file = self.lr_name.format(stem="<name>", scale="<s>", ext=".png")
            lr_dir = _resolve(self.lr_dir.format(scale="<s>"), root)
            lines.append(f"  {lr_dir}/{lr_file}   (optional LR; made by MATLAB bicubic if absent)")
        return "\n".join(lines)

    def missing_error(self, root: Path, what: str) -> DatasetNotFoundError:
        """The error raised when the set's files are not where they should be."""
        how = f"\nHow to get it: {self.source}" if self.source else ""
        return DatasetNotFoundError(
            f"{self.name}: {what}.\nExpected layout under data.root={root}:\n"
            f"{self.layout(root)}{how}\n"
            "Point data.root at the folder that holds it, or describe your own folder in the "
            "config as {name: ..., hr_dir: ..., lr_dir: ...}."
        )


def _resolve(folder: str, root: Path) -> Path:
    if folder.startswith(SKIMAGE_DATA_DIR):
        import skimage.data

        base = Path(skimage.data.__file__).parent
        return base / folder[len(SKIMAGE_DATA_DIR) :].lstrip("/")
    path = Path(folder).expanduser()
    return path if path.is_absolute() else root / path


def _benchmark(name: str, source: str) -> ImageSet:
    # The layout of the SwinIR / BasicSR benchmark packages: <Set>/HR, <Set>/LR_bicubic/X<s>.
    return ImageSet(
        name=name,
        hr_dir=f"{name}/HR",
        lr_dir=f"{name}/LR_bicubic/X{{scale}}",
        lr_name="{stem}x{scale}{ext}",
        source=source,
    )


_BENCHMARK_SOURCE = (
    "the benchmark package of the SR literature (e.g. the EDSR / SwinIR / BasicSR "
    "'benchmark' archives); only HR is needed, srlab makes the LR"
)
_DIV2K_SOURCE = (
    "https://data.vision.ee.ethz.ch/cvl/DIV2K/ (DIV2K_train_HR.zip, DIV2K_valid_HR.zip and "
    "DIV2K_{train,valid}_LR_bicubic_X{2,3,4}.zip), unzipped into <data.root>/DIV2K/"
)

# Photos shipped inside scikit-image: a training set and a validation set with no download.
# JPEG photos and textures train; three varied photos (a portrait, a cat, a still life) score.
SAMPLE_TRAIN_FILES = (
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "brick.png",
    "gravel.png",
)
SAMPLE_VAL_FILES = ("astronaut.png", "chelsea.png", "coffee.png")

CATALOG: dict[str, ImageSet] = {
    "set5": _benchmark("Set5", _BENCHMARK_SOURCE),
    "set14": _benchmark("Set14", _BENCHMARK_SOURCE),
    "urban100": _benchmark("Urban100", _BENCHMARK_SOURCE),
    "manga109": _benchmark("Manga109", _BENCHMARK_SOURCE),
    "bsd100": ImageSet(
        name="BSD100",
        hr_dir="BSD100/HR",
        lr_dir="BSD100/LR_bicubic/X{scale}",
        lr_name="{stem}_SRF_{scale}_LR{ext}",
        source=_BENCHMARK_SOURCE,
    ),
    "div2k_train": ImageSet(
        name="DIV2K",
        hr_dir="DIV2K/DIV2K_train_HR",
        lr_dir="DIV2K/DIV2K_train_LR_bicubic/X{scale}",
        lr_name="{stem}x{scale}{ext}",
        source=_DIV2K_SOURCE,
    ),
    "div2k_valid": ImageSet(
        name="DIV2K_valid",
        hr_dir="DIV2K/DIV2K_valid_HR",
        lr_dir="DIV2K/DIV2K_valid_LR_bicubic/X{scale}",
        lr_name="{stem}x{scale}{ext}",
        source=_DIV2K_SOURCE,
    ),
    "t91": ImageSet(
        name="T91",
        hr_dir="T91/HR",
        source="the 91 training images of Yang et al. (2010), as shipped with SRCNN's training code",
    ),
    "general100": ImageSet(
        name="General100",
        hr_dir="General100/HR",
        source="FSRCNN's General-100 set (Dong et al. 2016), from the FSRCNN project page",
    ),
    "sample_train": ImageSet(name="SampleTrain", hr_dir=SKIMAGE_DATA_DIR, files=SAMPLE_TRAIN_FILES),
    "sample": ImageSet(name="Sample", hr_dir=SKIMAGE_DATA_DIR, files=SAMPLE_VAL_FILES),
}


def get_image_set(spec: str | Mapping[str, Any] | ImageSet) -> ImageSet:
    """The :class:`ImageSet` named by ``spec`` (a catalog name) or described by it (a mapping).

    Raises:
        ConfigError: an unknown name, or a mapping with unknown or missing fields.
    """
    if isinstance(spec, ImageSet):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key not in CATALOG:
            raise ConfigError(
                f"unknown image set {spec!r}: known sets are {', '.join(sorted(CATALOG))}; "
                "or describe a folder as {name: MySet, hr_dir: /path/HR, lr_dir: null}"
            )
        return CATALOG[key]
    values = dict(spec)
    valid = {f.name for f in fields(ImageSet)}
    unknown = sorted(set(values) - valid)
    if unknown or "name" not in values or "hr_dir" not in values:
        raise ConfigError(
            f"image set {values}: needs 'name' and 'hr_dir'"
            + (f", got unknown keys {unknown}" if unknown else "")
            + f"; valid keys are {sorted(valid)}"
        )
    if values.get("files") is not None:
        values["files"] = tuple(values["files"])
    return ImageSet(**values)

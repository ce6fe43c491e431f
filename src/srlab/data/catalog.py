"""Known image sets: where each lives under ``data.root``, how its LR files are named, and
where it can be downloaded from.

An evaluation or training set is an :class:`~srlab.data.sets.ImageSet` (:mod:`srlab.data.sets`):
a folder of HR images, an optional folder of LR images per scale, and the rule that names an LR
file after its HR file. ``data.val_sets`` and ``data.train`` name sets of this catalog
(case-insensitive: ``set5``, ``Set5``) or describe a folder of their own as a mapping with the
fields of :class:`~srlab.data.sets.ImageSet` (:func:`get_image_set`).

Catalog sets that can be fetched carry a :class:`~srlab.data.sets.DownloadInfo`: the archives
they come from, how the archive members map onto srlab's folders, how many images each folder
must hold, and the checksums that are known. :mod:`srlab.data.download` acts on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from srlab.data.sets import (
    ARCHIVE_FORMATS,
    SKIMAGE_DATA_DIR,
    Archive,
    DownloadInfo,
    Extract,
    ImageSet,
)
from srlab.errors import ConfigError

__all__ = [
    "ARCHIVE_FORMATS",
    "CATALOG",
    "SAMPLE_TRAIN_FILES",
    "SAMPLE_VAL_FILES",
    "SCALES",
    "SKIMAGE_DATA_DIR",
    "Archive",
    "DownloadInfo",
    "Extract",
    "ImageSet",
    "get_image_set",
]


SCALES = (2, 3, 4)
"""The scales whose LR the catalog's archives provide."""

# -- DIV2K (NTIRE 2017): the official host of the ETH Zurich Computer Vision Lab ------------------

_DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
# (size in bytes, sha256) of the official archives, as registered by TensorFlow Datasets for its
# `div2k` builder (tensorflow/datasets, tensorflow_datasets/url_checksums/div2k.txt).
_DIV2K_CHECKSUMS: dict[str, tuple[int, str]] = {
    "DIV2K_train_HR.zip": (
        3530603713,
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
    ),
    "DIV2K_valid_HR.zip": (
        448993893,
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
    ),
    "DIV2K_train_LR_bicubic_X2.zip": (
        925390592,
        "a53a424317575838dadce4bcd97cf7b744d6855f43740ed5f0245af3cf4bd850",
    ),
    "DIV2K_train_LR_bicubic_X3.zip": (
        427847282,
        "ad5c8e5507e2765823d3c2c5bd0934842efcd487c5370604c224090898b3163a",
    ),
    "DIV2K_train_LR_bicubic_X4.zip": (
        246914039,
        "f006b837f4eb52b82909aa01478e6d6d199eefce932179491d0c9dbb706dde3a",
    ),
    "DIV2K_valid_LR_bicubic_X2.zip": (
        117763600,
        "60eed9875c697df51204aa579e2a699e1d5215095788a097ff54dd17e2664d57",
    ),
    "DIV2K_valid_LR_bicubic_X3.zip": (
        54513392,
        "04b9a2ed3b4a0715d3924d3ae8514830c3328fac8d30512ce716d6f419e052a3",
    ),
    "DIV2K_valid_LR_bicubic_X4.zip": (
        31505881,
        "a50a5d1c4b88de4e8d300d8fb2b904c52fe93b2b298a4899697760d7cbb6d553",
    ),
    "DIV2K_train_LR_unknown_X2.zip": (
        734182735,
        "f166eeba119fc55bfc9a99c05561980e7a965382f36640ce8ef626c9f61d122c",
    ),
    "DIV2K_train_LR_unknown_X3.zip": (
        377245548,
        "b6455af3b2aa02d76ae3238c49d7aae3b48b0acdc44b5bdc0f4c02d40ebcb43b",
    ),
    "DIV2K_train_LR_unknown_X4.zip": (
        208956781,
        "d131c7aad51e0abbdc4433362ce899e5e75f40b9847ead70ee995188e8fd0adb",
    ),
    "DIV2K_valid_LR_unknown_X2.zip": (
        93433041,
        "ec50bb084c0011130874efd2ed7859b46e0aa7104c565818d5271ac315e04e0a",
    ),
    "DIV2K_valid_LR_unknown_X3.zip": (
        48143315,
        "ebf23a3e1ef6800cae97285d3a50d022d89b62655e685884c0abcc89eec5b809",
    ),
    "DIV2K_valid_LR_unknown_X4.zip": (
        26695095,
        "e3897555a98de1157c20974fb6093105fbc1ff5e9caf7bd348f58f6da140fbef",
    ),
}


def _div2k_archive(stem: str, count: int, scale: int | None = None) -> Archive:
    """One official DIV2K zip (HR when ``scale`` is None), with its TFDS size and sha256."""
    # Each official zip holds one folder named like the zip, with the scale as a subfolder for
    # LR: DIV2K_train_HR.zip -> DIV2K_train_HR/0001.png,
    # DIV2K_train_LR_bicubic_X2.zip -> DIV2K_train_LR_bicubic/X2/0001x2.png. srlab keeps that
    # layout under <data.root>/DIV2K/.
    filename = f"{stem}_X{scale}.zip" if scale is not None else f"{stem}.zip"
    folder = f"{stem}/X{scale}" if scale is not None else stem
    size, sha256 = _DIV2K_CHECKSUMS[filename]
    return Archive(
        url=_DIV2K_URL + filename,
        format="zip",
        extracts=(Extract(folder, f"DIV2K/{folder}", count, scale),),
        sha256=sha256,
        size=size,
        checksum_source="tensorflow/datasets url_checksums/div2k.txt",
    )


def _div2k(key: str, split: str, track: str, name: str) -> ImageSet:
    """The catalog entry ``key`` for a DIV2K split and LR track, with its archives."""
    # split: train (0001-0800) or valid (0801-0900); track: bicubic or unknown (NTIRE 2017
    # track 2: an unknown degradation, so its LR cannot be made from HR by srlab).
    count = 800 if split == "train" else 100
    lr_stem = f"DIV2K_{split}_LR_{track}"
    archives = (
        _div2k_archive(f"DIV2K_{split}_HR", count),
        *(_div2k_archive(lr_stem, count, scale) for scale in SCALES),
    )
    return ImageSet(
        name=name,
        hr_dir=f"DIV2K/DIV2K_{split}_HR",
        lr_dir=f"DIV2K/{lr_stem}/X{{scale}}",
        lr_name="{stem}x{scale}{ext}",
        source=(
            f"`python -m srlab.data.download {key}` (or data.download=true), or by hand "
            f"from {_DIV2K_URL} (DIV2K_{split}_HR.zip, {lr_stem}_X{{2,3,4}}.zip) unzipped into "
            "<data.root>/DIV2K/"
        ),
        download=DownloadInfo(
            homepage=_DIV2K_URL,
            archives=archives,
            images=count,
            note=f"DIV2K {split} ({'0001-0800' if split == 'train' else '0801-0900'}), "
            f"LR of the {track} track; sizes and sha256 from TensorFlow Datasets",
        ),
    )


# -- Flickr2K (DF2K = DIV2K + Flickr2K): hosted by the EDSR authors (SNU CVLab) ------------------

_FLICKR2K_ARCHIVE = Archive(
    url="https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
    format="tar",
    # One tar with everything: Flickr2K/Flickr2K_HR/000001.png and
    # Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png (the layout read by torchSR and by
    # EDSR-PyTorch's DF2K loader); its Flickr2K_LR_unknown/ folders are not extracted.
    extracts=(
        Extract("Flickr2K/Flickr2K_HR", "Flickr2K/Flickr2K_HR", 2650),
        *(
            Extract(
                f"Flickr2K/Flickr2K_LR_bicubic/X{s}", f"Flickr2K/Flickr2K_LR_bicubic/X{s}", 2650, s
            )
            for s in SCALES
        ),
    ),
    # No sha256 is published; this MD5 is the one two independent public loaders check
    # (Coloquinte/torchSR torchsr/datasets/flickr2k.py, leverxgroup/esrgan esrgan/dataset).
    md5="5d3f39443d5e9489bff8963f8f26cb03",
    checksum_source="MD5 checked by Coloquinte/torchSR and leverxgroup/esrgan",
)

# -- Benchmark sets: the EDSR authors' benchmark.tar --------------------------------------------

_BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
# benchmark.tar (about 250 MB, linked from EDSR-PyTorch's README) holds Set5, Set14, B100 and
# Urban100 as benchmark/<Set>/HR/<name>.png and benchmark/<Set>/LR_bicubic/X<s>/<name>x<s>.png
# (the paths torchSR and EDSR-PyTorch's data/benchmark.py read). Its MD5 is the one torchSR
# checks (torchsr/datasets/benchmarks.py); no sha256 is published. One archive serves four catalog sets: downloading several of
# them at once fetches it once.
_BENCHMARK_MD5 = "4ace41d33c2384b97e6b320cd0afd6ba"
_BENCHMARK_COUNTS = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}


def _benchmark_archive(folder: str, name: str, rename: tuple[str, str] | None = None) -> Archive:
    """The part of EDSR's benchmark.tar for one set: ``benchmark/<folder>`` -> ``<name>``."""
    count = _BENCHMARK_COUNTS[folder]
    return Archive(
        url=_BENCHMARK_URL,
        format="tar",
        extracts=(
            Extract(f"benchmark/{folder}/HR", f"{name}/HR", count),
            *(
                Extract(
                    f"benchmark/{folder}/LR_bicubic/X{s}",
                    f"{name}/LR_bicubic/X{s}",
                    count,
                    s,
                    rename,
                )
                for s in SCALES
            ),
        ),
        md5=_BENCHMARK_MD5,
        checksum_source="MD5 checked by Coloquinte/torchSR",
    )


def _benchmark(name: str, source: str, download: DownloadInfo | None = None) -> ImageSet:
    """A benchmark set in the literature's layout: ``<name>/HR``, ``<name>/LR_bicubic/X<s>``."""
    # The layout of the SwinIR / BasicSR benchmark packages: <Set>/HR, <Set>/LR_bicubic/X<s>.
    return ImageSet(
        name=name,
        hr_dir=f"{name}/HR",
        lr_dir=f"{name}/LR_bicubic/X{{scale}}",
        lr_name="{stem}x{scale}{ext}",
        source=source,
        download=download,
    )


def _benchmark_info(folder: str, name: str, rename: tuple[str, str] | None = None) -> DownloadInfo:
    """Download metadata of a set that comes from EDSR's benchmark.tar."""
    return DownloadInfo(
        homepage="https://github.com/sanghyun-son/EDSR-PyTorch (benchmark datasets link)",
        archives=(_benchmark_archive(folder, name, rename),),
        images=_BENCHMARK_COUNTS[folder],
        note=f"{folder} from EDSR's benchmark.tar; member layout as read by torchSR and "
        "EDSR-PyTorch, not re-verified against the archive here",
    )


_BENCHMARK_SOURCE = (
    "`python -m srlab.data.download <set>` (EDSR's benchmark.tar: Set5, Set14, BSD100, "
    "Urban100), or the benchmark package of the SR literature (the EDSR / SwinIR / BasicSR "
    "'benchmark' archives) laid out by hand; only HR is needed, srlab makes the LR"
)
_MANGA109_SOURCE = (
    "the Manga109 site http://www.manga109.org/en/download.html (its licence forbids "
    "redistribution, so srlab cannot download it): request it there and lay out the 109 "
    "images by hand; only HR is needed, srlab makes the LR"
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
    "set5": _benchmark("Set5", _BENCHMARK_SOURCE, _benchmark_info("Set5", "Set5")),
    "set14": _benchmark("Set14", _BENCHMARK_SOURCE, _benchmark_info("Set14", "Set14")),
    "urban100": _benchmark("Urban100", _BENCHMARK_SOURCE, _benchmark_info("Urban100", "Urban100")),
    "manga109": _benchmark(
        "Manga109",
        _MANGA109_SOURCE,
        DownloadInfo(
            homepage="http://www.manga109.org/en/download.html",
            images=109,
            note="no public direct download: the licence forbids redistribution",
        ),
    ),
    "bsd100": ImageSet(
        name="BSD100",
        hr_dir="BSD100/HR",
        lr_dir="BSD100/LR_bicubic/X{scale}",
        lr_name="{stem}_SRF_{scale}_LR{ext}",
        source=_BENCHMARK_SOURCE,
        # EDSR calls the set B100 and names LR <name>x<s>.png; srlab's BSD100 keeps the
        # SelfExSR naming <name>_SRF_<s>_LR.png, so the LR files are renamed on extraction.
        download=_benchmark_info("B100", "BSD100", (r"^(.+)x(\d+)(\.\w+)$", r"\1_SRF_\2_LR\3")),
    ),
    "div2k_train": _div2k("div2k_train", "train", "bicubic", "DIV2K"),
    "div2k_valid": _div2k("div2k_valid", "valid", "bicubic", "DIV2K_valid"),
    # The NTIRE 2017 "unknown" track: the same HR, LR made by an undisclosed degradation.
    "div2k_train_unknown": _div2k("div2k_train_unknown", "train", "unknown", "DIV2K_unknown"),
    "div2k_valid_unknown": _div2k("div2k_valid_unknown", "valid", "unknown", "DIV2K_valid_unknown"),
    "flickr2k": ImageSet(
        name="Flickr2K",
        hr_dir="Flickr2K/Flickr2K_HR",
        lr_dir="Flickr2K/Flickr2K_LR_bicubic/X{scale}",
        lr_name="{stem}x{scale}{ext}",
        source=(
            "`python -m srlab.data.download flickr2k` (or data.download=true), or by hand: "
            "https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar untarred into <data.root>/; "
            "DF2K is data.train=[div2k_train, flickr2k]"
        ),
        download=DownloadInfo(
            homepage="https://github.com/LimBee/NTIRE2017 (EDSR; Flickr2K link in its README)",
            archives=(_FLICKR2K_ARCHIVE,),
            images=2650,
            note="2650 Flickr images collected by the EDSR authors; one tar (HR, bicubic "
            "and unknown LR); MD5 only",
        ),
    ),
    "t91": ImageSet(
        name="T91",
        hr_dir="T91/HR",
        source=(
            "`python -m srlab.data.download t91` (the Train/ folder of SRCNN's training code "
            "http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_train.zip: 91 .bmp images), "
            "or those 91 images copied into <data.root>/T91/HR/"
        ),
        download=DownloadInfo(
            homepage="http://mmlab.ie.cuhk.edu.hk/projects/SRCNN.html",
            archives=(
                Archive(
                    url="http://mmlab.ie.cuhk.edu.hk/projects/SRCNN/SRCNN_train.zip",
                    format="zip",
                    # The 91 images of Yang et al. are the zip's Train/*.bmp; whether the zip
                    # has a top folder above Train/ is not verified here, so any is accepted.
                    extracts=(Extract("**/Train", "T91/HR", 91),),
                ),
            ),
            images=91,
            note="Yang et al. (2010) 91 images as shipped in SRCNN's Caffe training code "
            "(BMP, kept as is); no published checksum",
        ),
    ),
    "general100": ImageSet(
        name="General100",
        hr_dir="General100/HR",
        source=(
            "FSRCNN's General-100 set (Dong et al. 2016), linked from the FSRCNN project page "
            "http://mmlab.ie.cuhk.edu.hk/projects/FSRCNN.html: copy its 100 images into "
            "<data.root>/General100/HR/"
        ),
        download=DownloadInfo(
            homepage="http://mmlab.ie.cuhk.edu.hk/projects/FSRCNN.html",
            images=100,
            # The project page links the set through a file-sharing service; no stable direct
            # archive URL is known to srlab, so none is recorded rather than a guessed one.
            note="no direct archive URL known: download it from the FSRCNN project page",
        ),
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
    # Download metadata belongs to the catalog; a described folder is laid out by its owner.
    valid = {f.name for f in fields(ImageSet)} - {"download"}
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

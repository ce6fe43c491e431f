"""Datasets of (LR, HR) pairs: random aligned patches for training, whole images for evaluation.

Both read the same pairs (:func:`list_pairs`) through the same loader (:func:`load_pair`):
HR is mod-cropped to a multiple of the scale, LR comes from its file or is made from the
mod-cropped HR by MATLAB bicubic, exactly as the literature makes its LR.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from srlab.data.cache import DecodedCache, source_key
from srlab.data.catalog import ImageSet
from srlab.data.sampling import PatchKey
from srlab.errors import ConfigError, DataError, DatasetNotFoundError
from srlab.imaging.imresize import _output_len as output_len
from srlab.imaging.imresize import imresize
from srlab.imaging.io import is_image_file, read_image, write_image
from srlab.imaging.tiling import dihedral

log = logging.getLogger(__name__)


LR_MODES = ("auto", "files", "generate")


@dataclass(frozen=True)
class ImagePair:
    """One image of a set: its name, its HR file and its LR file.

    ``lr`` None means the LR is made from HR by MATLAB bicubic; it is then cached under
    ``lr_cache`` (a folder) when one is given. ``downscale`` below 1 makes the HR image this
    file shrunk by that factor with MATLAB bicubic (``data.downscaled_copies``); its LR is
    then made from that smaller HR.
    """

    name: str
    hr: Path
    lr: Path | None
    lr_cache: Path | None = None
    downscale: float = 1.0

    @property
    def variant(self) -> str:
        """What is made from the HR file: ``""`` for the file itself, else ``downscale<f>``
        (part of the names of its cached arrays)."""
        return "" if self.downscale == 1.0 else f"downscale{self.downscale:g}"


def downscaled_copies(pairs: list[ImagePair], factors: Sequence[float]) -> list[ImagePair]:
    """``pairs`` followed by a copy of each shrunk by each of ``factors`` (0 < f < 1).

    The data augmentation of SRCNN, FSRCNN and VDSR (FSRCNN: 0.9, 0.8, 0.7, 0.6): the same
    scenes at smaller sizes show the network more texture per pixel. Each copy is one more
    image of the set, sampled as often as its original.

    Raises:
        ConfigError: a factor outside (0, 1), or a pair whose LR comes from a file (a shrunk
            HR has no LR file: set ``data.lr=generate``).
    """
    bad = [f for f in factors if not 0 < f < 1]
    if bad:
        raise ConfigError(
            f"data.downscaled_copies={list(factors)}: every factor must be between 0 and 1 "
            f"(exclusive), e.g. [0.9, 0.8, 0.7, 0.6]; not {bad}"
        )
    with_files = [pair for pair in pairs if pair.lr is not None]
    if with_files:
        raise ConfigError(
            f"data.downscaled_copies needs LR made from HR, but {with_files[0].lr} is an LR file "
            "(its set has an LR folder): set data.lr=generate, or data.downscaled_copies=null"
        )
    copies = [
        replace(pair, name=f"{pair.name}@{f:g}", downscale=float(f))
        for f in factors
        for pair in pairs
    ]
    return [*pairs, *copies]


def downscaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """(width, height) of an image shrunk by ``factor`` with :func:`imresize` (MATLAB's
    ``ceil(factor * side)``, computed by imresize's own rule)."""
    return output_len(width, factor), output_len(height, factor)


def list_pairs(
    image_set: ImageSet,
    root: Path,
    scale: int,
    lr: str = "auto",
    cache_dir: Path | None = None,
) -> list[ImagePair]:
    """The image pairs of ``image_set`` at ``scale``, checking that every file is there.

    Args:
        image_set: the set.
        root: ``data.root``, which the set's folders are relative to.
        scale: the SR scale.
        lr: where LR comes from: ``auto`` (the set's LR files when its LR folder exists, else
            made from HR), ``files`` (the LR files, required), ``generate`` (always made from
            HR by MATLAB bicubic, ignoring LR files).
        cache_dir: where made LR images are cached on disk (``<cache_dir>/lr/x<s>/``), so
            they are computed once; None keeps them in memory only.

    Raises:
        DatasetNotFoundError: the HR folder is missing or empty, a listed file is missing,
            or LR files are used but one is missing.
    """
    if lr not in LR_MODES:
        raise ConfigError(f"data.lr={lr!r}: use one of {LR_MODES}")
    hr_dir = image_set.hr_path(root)
    if hr_dir.exists() and not hr_dir.is_dir():
        raise image_set.missing_error(root, f"{hr_dir} is a file, not a folder of HR images")
    if not hr_dir.is_dir():
        raise image_set.missing_error(root, f"HR folder {hr_dir} does not exist")
    if image_set.files is not None:
        hr_files = [hr_dir / name for name in image_set.files]
        missing = [str(path) for path in hr_files if not _listed(path)]
        if missing:
            raise image_set.missing_error(root, f"missing HR files {missing}")
    else:
        hr_files = sorted(p for p in hr_dir.iterdir() if is_dataset_image(p))
        if not hr_files:
            raise image_set.missing_error(root, f"HR folder {hr_dir} holds no images")
    lr_dir = image_set.lr_path(root, scale)
    if lr == "files" and (lr_dir is None or not lr_dir.is_dir()):
        raise image_set.missing_error(root, f"data.lr=files but there is no LR folder {lr_dir}")
    if lr == "generate" or lr_dir is None or not lr_dir.is_dir():
        cache = None if cache_dir is None else Path(cache_dir) / "lr" / f"x{scale}"
        return [ImagePair(path.stem, path, None, cache) for path in hr_files]
    pairs = []
    for path in hr_files:
        lr_name = image_set.lr_name.format(stem=path.stem, scale=scale, ext=path.suffix)
        pairs.append(ImagePair(path.stem, path, lr_dir / lr_name))
    missing = [str(pair.lr) for pair in pairs if not _listed(pair.lr)]
    if missing:
        raise DatasetNotFoundError(
            f"{image_set.name}: the LR folder {lr_dir} lacks {len(missing)} file(s) for x{scale}, "
            f"e.g. {missing[:3]}. Add them, or move the folder away so that srlab makes every "
            "LR image from its HR image by MATLAB bicubic."
        )
    return pairs


def is_dataset_image(path: Path) -> bool:
    """Whether a folder entry is one of a dataset's images: an image file by its extension
    whose name does not start with ``.``.

    Hidden names are skipped, as ``src/infer.py`` skips them: macOS writes ``._<name>.png``
    resource forks beside every file it copies to a foreign disk, and they are not images. A
    symbolic link whose target is gone is listed, so that the check before training names it
    (:func:`srlab.data.validation.check_pairs`) instead of the set silently shrinking.
    """
    return not path.name.startswith(".") and is_image_file(path) and _listed(path)


def _listed(path: Path) -> bool:
    # A regular file, or a dangling symbolic link (reported by the check, not dropped).
    return path.is_file() or (path.is_symlink() and not path.exists())


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR of a mod-cropped uint8 HR image [H, W, C] by MATLAB bicubic, as uint8 [H/s, W/s, C]."""
    # A copy: ``hr`` may be a read-only view of the decoded cache.
    chw = torch.from_numpy(hr.transpose(2, 0, 1).copy())
    return imresize(chw, scale=1.0 / scale).numpy().transpose(1, 2, 0)


def cached_lr(pair: ImagePair, hr: np.ndarray, scale: int) -> np.ndarray:
    """The made LR of ``pair``: read from its disk cache, or made and written there.

    The cache file is named by a hash of the HR file's path, size and modification time, so
    a changed HR image is made again. It is written to a temporary name and renamed, so
    concurrent workers or an interrupted run never leave a half-written file; a read-only
    cache folder only costs the recomputation.
    """
    if pair.lr_cache is None:
        return make_lr(hr, scale)
    key = source_key(pair.hr, pair.variant) if pair.variant else source_key(pair.hr)
    path = pair.lr_cache / f"{pair.hr.stem}-{key}.png"
    if path.is_file():
        return read_image(path)
    lr = make_lr(hr, scale)
    try:
        write_image(path, lr)
    except OSError as error:
        log.warning(
            "cannot cache LR images in %s (%s): they are made in memory", path.parent, error
        )
    return lr


def load_pair(
    pair: ImagePair, scale: int, channels: int | None, decoded: DecodedCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read one pair as uint8 arrays ``(hr, lr)`` of shapes [s*h, s*w, C] and [h, w, C].

    Args:
        pair: the files.
        scale: the SR scale; HR is mod-cropped to a multiple of it.
        channels: 3 expands grayscale to RGB (training batches need one channel count);
            None keeps each image's own channels (evaluation scores gray on its channel).
        decoded: a decoded-image cache: the arrays are then read-only views of its
            memory-mapped files (decoded into it on first use), and slicing them reads only
            the rows sliced. None decodes the files.

    Raises:
        DataError: an LR file whose size is not the HR size divided by the scale.
    """
    hr = _read_hr(pair, decoded)
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    if pair.lr is not None:
        lr = _read(pair.lr, decoded)
    elif decoded is None:
        lr = cached_lr(pair, hr, scale)
    else:
        # Made from the HR mod-cropped at this scale: one entry per scale.
        variant = f"{pair.variant}-bicubic-x{scale}" if pair.variant else f"bicubic-x{scale}"
        lr = decoded.get(pair.hr, lambda: cached_lr(pair, hr, scale), variant)
    if lr.shape[:2] != (hr.shape[0] // scale, hr.shape[1] // scale):
        raise DataError(
            f"LR {pair.lr} is {lr.shape[1]}x{lr.shape[0]} (WxH) but HR {pair.hr} mod-cropped "
            f"to x{scale} is {hr.shape[1]}x{hr.shape[0]}: LR must be HR/{scale}. Check scale "
            "and the LR folder, or remove the LR folder to make LR by MATLAB bicubic."
        )
    if channels == 3:
        hr, lr = _expand_gray(hr), _expand_gray(lr)
    return hr, lr


def _read(path: Path, decoded: DecodedCache | None) -> np.ndarray:
    return read_image(path) if decoded is None else decoded.get(path, lambda: read_image(path))


def _read_hr(pair: ImagePair, decoded: DecodedCache | None) -> np.ndarray:
    if not pair.variant:
        return _read(pair.hr, decoded)

    def shrink() -> np.ndarray:
        chw = torch.from_numpy(_read(pair.hr, decoded).transpose(2, 0, 1).copy())
        return imresize(chw, scale=pair.downscale).numpy().transpose(1, 2, 0)

    return shrink() if decoded is None else decoded.get(pair.hr, shrink, pair.variant)


def _expand_gray(image: np.ndarray) -> np.ndarray:
    # A read-only view: a memory-mapped image stays unread until a crop of it is copied.
    return np.broadcast_to(image, (*image.shape[:2], 3)) if image.shape[2] == 1 else image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, C] array -> float [C, H, W] tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


class _PairDataset(Dataset):
    """Shared loading of pairs: decoded per use, from a decoded-image cache on disk, and/or
    kept in memory after the first use."""

    def __init__(
        self,
        pairs: list[ImagePair],
        scale: int,
        channels: int | None,
        in_memory: bool,
        decoded: DecodedCache | None = None,
    ) -> None:
        if not pairs:
            raise DataError("a dataset needs at least one image pair")
        self.pairs = pairs
        self.scale = scale
        self.channels = channels
        self.in_memory = in_memory
        self.decoded = decoded
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self._cache:
            return self._cache[index]
        arrays = load_pair(self.pairs[index], self.scale, self.channels, self.decoded)
        if self.in_memory and self.decoded is not None:
            arrays = tuple(np.array(a) for a in arrays)  # from the mapped files into memory
        if self.in_memory or self.decoded is not None:
            # Maps are kept too: opening one costs ~4x more than cropping a patch from it.
            self._cache[index] = arrays
        return arrays


class PatchDataset(_PairDataset):
    """Random aligned (LR, HR) patches with flips and 90-degree rotations, for training.

    Args:
        pairs: the training images.
        scale: the SR scale.
        patch_size: HR patch side in pixels, a multiple of ``scale``; the LR patch is
            ``patch_size // scale``.
        repeat: how many times each image is visited per epoch (lengthens epochs of small sets).
        augment: random horizontal flip, vertical flip and transpose (the 8 dihedral
            transforms), applied alike to LR and HR.
        in_memory: keep decoded images (and made LR) in memory after their first use.
        decoded: read images from this decoded-image cache (:mod:`srlab.data.cache`), which
            they are decoded into on first use; their memory maps are kept open and a patch
            reads only its rows. None decodes every image at every use (unless ``in_memory``).
    """

    def __init__(
        self,
        pairs: list[ImagePair],
        scale: int,
        patch_size: int,
        repeat: int = 1,
        augment: bool = True,
        in_memory: bool = False,
        decoded: DecodedCache | None = None,
    ) -> None:
        super().__init__(pairs, scale, channels=3, in_memory=in_memory, decoded=decoded)
        if patch_size % scale:
            raise DataError(
                f"data.patch_size={patch_size} is not a multiple of scale={scale}: "
                f"use e.g. {patch_size - patch_size % scale or scale}"
            )
        self.patch_size = patch_size
        self.repeat = repeat
        self.augment = augment

    def __len__(self) -> int:
        return len(self.pairs) * self.repeat

    def __getitem__(self, key: PatchKey | int) -> dict:
        """One patch; a :class:`PatchKey` fixes its crop and flips, a bare index draws them.

        Training uses keys (:class:`~srlab.data.sampling.TrainSampler`), so that a patch is
        the same whichever worker makes it and after a resume; a bare index draws from
        torch's global RNG.
        """
        if isinstance(key, PatchKey):
            index, generator = key.index, torch.Generator().manual_seed(key.seed)
        else:
            index, generator = key, None
        index %= len(self.pairs)
        hr, lr = self._load(index)
        lr_patch = self.patch_size // self.scale
        if lr.shape[0] < lr_patch or lr.shape[1] < lr_patch:
            raise DataError(
                f"{self.pairs[index].hr} is {hr.shape[1]}x{hr.shape[0]} (WxH), smaller than "
                f"data.patch_size={self.patch_size}: lower the patch size or remove the image"
            )
        top = int(torch.randint(0, lr.shape[0] - lr_patch + 1, (), generator=generator))
        left = int(torch.randint(0, lr.shape[1] - lr_patch + 1, (), generator=generator))
        lr_t = to_tensor(lr[top : top + lr_patch, left : left + lr_patch])
        s = self.scale
        hr_t = to_tensor(hr[top * s : (top + lr_patch) * s, left * s : (left + lr_patch) * s])
        if self.augment:
            transpose, hflip, vflip = (
                bool(b) for b in torch.randint(0, 2, (3,), generator=generator)
            )
            lr_t, hr_t = (
                dihedral(image, transpose, hflip, vflip).contiguous() for image in (lr_t, hr_t)
            )
        return {"lr": lr_t, "hr": hr_t, "name": self.pairs[index].name}


class EvalDataset(_PairDataset):
    """Whole (LR, HR) images for validation and test, each with its own channel count.

    Args:
        pairs: the images of one evaluation set.
        scale: the SR scale; HR is mod-cropped to a multiple of it.
        in_memory: keep decoded images in memory after their first use (evaluation sets are
            read at every validation).
        crop: score only the centre ``crop x crop`` HR pixels of each image (rounded down to
            a multiple of ``scale``; the LR is cropped to the same region), for smoke runs
            (``debug=fast``) that must be quick whatever the network; None: whole images.
    """

    def __init__(
        self, pairs: list[ImagePair], scale: int, in_memory: bool = True, crop: int | None = None
    ) -> None:
        super().__init__(pairs, scale, channels=None, in_memory=in_memory)
        if crop is not None and crop < scale:
            raise DataError(f"data.eval_crop={crop} must be at least the scale ({scale})")
        self.crop = crop

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        hr, lr = self._load(index)
        if self.crop is not None:
            hr, lr = centre_crop(hr, lr, self.crop, self.scale)
        return {"lr": to_tensor(lr), "hr": to_tensor(hr), "name": self.pairs[index].name}


def centre_crop(
    hr: np.ndarray, lr: np.ndarray, size: int, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """The centre ``size x size`` HR pixels (at most the image) and the LR pixels under them.

    The HR crop starts on a multiple of ``scale``, so it is exactly ``scale`` times the LR
    crop, as the whole images are.
    """
    lr_size = size // scale
    lr_h, lr_w = lr.shape[:2]
    crop_h, crop_w = min(lr_size, lr_h), min(lr_size, lr_w)
    top, left = (lr_h - crop_h) // 2, (lr_w - crop_w) // 2
    lr = lr[top : top + crop_h, left : left + crop_w]
    hr = hr[top * scale : (top + crop_h) * scale, left * scale : (left + crop_w) * scale]
    return hr, lr


class MultiScaleDataset(Dataset):
    """Training patches at several scales, one :class:`PatchDataset` per scale.

    Indexed with :class:`~srlab.data.sampling.PatchKey` s, whose ``scale`` picks the dataset;
    :class:`~srlab.data.sampling.TrainSampler` gives all keys of a batch one scale (patches
    of one batch must share a size). Each sample carries its ``scale``. For one model
    trained on several scales (VDSR's multi-scale model).

    Args:
        datasets: ``{scale: PatchDataset}``, the same images at every scale.
    """

    def __init__(self, datasets: dict[int, PatchDataset]) -> None:
        lengths = {len(dataset) for dataset in datasets.values()}
        if len(lengths) != 1:
            raise DataError(f"the datasets of the scales differ in length: {sorted(lengths)}")
        self.datasets = datasets
        self.scales = sorted(datasets)

    def __len__(self) -> int:
        return len(self.datasets[self.scales[0]])

    def __getitem__(self, key: PatchKey) -> dict:
        return {**self.datasets[key.scale][key], "scale": key.scale}


class EvalDistributedSampler(DistributedSampler):
    """Splits an evaluation set over DDP ranks without padding: every image scored once.

    ``DistributedSampler`` pads the set to a multiple of the world size by repeating images,
    so a 5-image Set5 on 4 GPUs would score 3 images twice. Here rank ``r`` takes images
    ``r, r + W, r + 2W, ...``; ranks may get one image fewer, which metrics that sum over
    images (srlab's) handle exactly. Lightning leaves samplers of this class in place.
    """

    def __init__(self, dataset: Dataset) -> None:
        super().__init__(dataset, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))

"""The LightningDataModule that feeds every task: training patches and evaluation sets."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from srlab.data.cache import DecodedCache
from srlab.data.catalog import ImageSet, get_image_set
from srlab.data.datasets import (
    EvalDataset,
    EvalDistributedSampler,
    ImagePair,
    MultiScaleDataset,
    PatchDataset,
    downscaled_copies,
    downscaled_size,
    list_pairs,
    load_pair,
)
from srlab.data.degradations import RealESRGANDegradation, WithDegradationParams
from srlab.data.degradations.preview import DegradationPreview
from srlab.data.sampling import TrainSampler
from srlab.data.validation import check_pairs, drop_bad_pairs
from srlab.errors import ConfigError, DataError
from srlab.imaging.io import image_header, read_image

log = logging.getLogger(__name__)

SetSpec = str | Mapping[str, Any]


class SRDataModule(L.LightningDataModule):
    """Training patches from one image set; whole-image validation/test on a list of sets.

    Every file is located when the module is built (:meth:`verify`), so a missing dataset
    fails in the first seconds with the folder layout it expects, before any training.

    Args:
        scale: the SR scale (the top-level ``scale`` key).
        root: the folder datasets live in (``data.root``); set paths are relative to it.
        train: the training set, a catalog name or ``{name, hr_dir, lr_dir, ...}``, or a list
            of them, concatenated (``[t91, general100]``, ``[div2k_train, flickr2k]``); None
            for an evaluation-only module (``data=set5``).
        val_sets: evaluation sets scored at every validation, each logged under its name;
            the first one is ``val/psnr``.
        test_sets: sets scored by ``trainer.test`` (default: ``val_sets``).
        patch_size: HR training patch side in pixels (a multiple of ``scale``).
        batch_size: the global training batch size: under DDP each of the ``W`` processes
            loads ``batch_size / W`` patches, so a recipe means the same on 1 or 8 GPUs.
        repeat: visits of each training image per epoch.
        augment: random flips and 90-degree rotations of training patches.
        in_memory: keep decoded training images in memory (evaluation images always are).
        cache: decode every training image once into ``<cache_dir>/decoded/`` (uint8 ``.npy``
            files, memory-mapped, so a patch reads only its rows; :mod:`srlab.data.cache`),
            built by :meth:`prepare_data`; False decodes each image at each use.
        num_workers: loader worker processes per training process; ``auto``: this node's
            usable cores split over its training processes, less one core each for training
            itself, at most 8 (1 on a 2-core machine, 0 for 2 DDP processes there).
        prefetch_factor: batches each worker loads ahead.
        pin_memory: pinned host memory for faster copies to the GPU (None: when training on
            CUDA).
        persistent_workers: keep workers (and their decoded images) between epochs.
        lr: where LR comes from: ``auto`` (LR files when the set has them, else made from HR
            by MATLAB bicubic), ``files`` (required), ``generate`` (always made from HR).
        cache_dir: made LR images are cached under ``<cache_dir>/lr/`` (None: in memory only),
            decoded training images under ``<cache_dir>/decoded/`` (with ``cache``).
        on_bad_image: ``error`` (default): any unreadable image, LR/HR size mismatch or HR
            smaller than a patch stops set-up with one list of every bad file; ``skip``:
            those images are left out, each with a warning.
        download: fetch, verify and extract missing sets of the catalog into ``root`` first
            (:func:`srlab.data.download.download_sets`); complete sets are left alone.
        train_scales: train one model on several scales, one random scale per batch
            (VDSR's multi-scale training; the network must accept any scale); the HR patch
            is ``patch_size`` rounded down to a multiple of each scale. None: ``[scale]``.
            Validation and test run at ``scale``.
        downscaled_copies: also train on a copy of every training image shrunk by each of
            these factors with MATLAB bicubic, LR made from the copy (FSRCNN's augmentation:
            ``[0.9, 0.8, 0.7, 0.6]``); None: the images as they are.
        seed: seeds the training order, crops and flips (None: the run's seed, i.e. torch's
            initial seed, which the pipeline sets); the order is a function of the seed and
            the epoch, so a resumed run continues it exactly.
        eval_crop: validate and test on the centre ``eval_crop`` HR pixels of each image
            (``debug=fast``: a smoke run of a large network in seconds); None: whole images,
            as the papers score them.
        degradation: make training LR from the HR patches by Real-ESRGAN's degradation model
            (``data/degradation=realesrgan``: its settings, see
            :mod:`srlab.data.degradations`), on the training device after each batch is
            transferred (:meth:`on_after_batch_transfer`), with per-sample parameters drawn
            from each patch's seed; the target becomes the sharpened HR when the settings say
            so. None: the LR of the files or MATLAB bicubic. Validation and test are unchanged.
    """

    def __init__(
        self,
        scale: int,
        root: str | Path,
        train: SetSpec | Sequence[SetSpec] | None,
        val_sets: Sequence[SetSpec],
        test_sets: Sequence[SetSpec] | None = None,
        patch_size: int = 96,
        batch_size: int = 16,
        repeat: int = 1,
        augment: bool = True,
        in_memory: bool = False,
        cache: bool = False,
        num_workers: int | str = "auto",
        prefetch_factor: int = 2,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        lr: str = "auto",
        cache_dir: str | Path | None = None,
        train_scales: Sequence[int] | None = None,
        downscaled_copies: Sequence[float] | None = None,
        download: bool = False,
        on_bad_image: str = "error",
        seed: int | None = None,
        eval_crop: int | None = None,
        degradation: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.scale = int(scale)
        self.root = Path(root).expanduser()
        if train is None or isinstance(train, str | Mapping):
            train = [] if train is None else [train]
        self.train_sets = [get_image_set(spec) for spec in train]
        self.val_sets = [get_image_set(spec) for spec in val_sets]
        self.test_sets = (
            self.val_sets if test_sets is None else [get_image_set(s) for s in test_sets]
        )
        # Training validates on val_sets; an evaluation-only module (src/eval.py) may test only.
        _check_unique_names(self.val_sets, "data.val_sets", allow_empty=not self.train_sets)
        _check_unique_names(self.test_sets, "data.test_sets")
        self.train_scales = [self.scale] if not train_scales else [int(s) for s in train_scales]
        _check_num_workers(num_workers)
        self.decoded = _decoded_cache(cache, cache_dir)
        self._pairs: dict[tuple[ImageSet, int], list[ImagePair]] = {}
        self._decoded_ok: set[Path] = set()
        self.seed = seed
        self.eval_crop = eval_crop
        self._resume_position: tuple[int, int] | None = None
        self.degradation = None if degradation is None else RealESRGANDegradation(degradation)
        self._preview: DegradationPreview | None = None

    @classmethod
    def from_folder(
        cls, hr_dir: str | Path, lr_dir: str | Path | None = None, **kwargs: Any
    ) -> SRDataModule:
        """Train on a folder of HR images (``data=folder data.hr_dir=...``).

        Args:
            hr_dir: folder of HR training images.
            lr_dir: optional folder of LR images named like their HR files; None makes LR
                by MATLAB bicubic.
            **kwargs: the other arguments of :class:`SRDataModule`.
        """
        train = {"name": "Folder", "hr_dir": str(hr_dir), "lr_dir": lr_dir and str(lr_dir)}
        return cls(train=train, **kwargs)

    def train_pairs(self, scale: int | None = None) -> list[ImagePair]:
        """Every training image at ``scale`` (default: ``scale``), in order (after verify)."""
        scale = self.scale if scale is None else scale
        return [pair for s in self.train_sets for pair in self._pairs[(s, scale)]]

    @property
    def val_set_names(self) -> list[str]:
        """Names of the validation sets, in dataloader order."""
        return [image_set.name for image_set in self.val_sets]

    @property
    def test_set_names(self) -> list[str]:
        """Names of the test sets, in dataloader order."""
        return [image_set.name for image_set in self.test_sets]

    def verify(self) -> None:
        """Locate and check every file of every configured set, before any training.

        Every image is checked (:func:`srlab.data.validation.check_pairs`): its header, LR
        size against HR / scale, HR size against the patch, and a full decode (training
        images decode into the decoded-image cache when ``cache`` is set, which is then
        built). ``on_bad_image`` decides what a bad file does: one error listing every bad
        file, or the set without them.

        Raises:
            DatasetNotFoundError: a set's folder or files are missing.
            DataError: bad images, with ``on_bad_image=error``.
        """
        hp = self.hparams
        wanted = [(s, scale, True) for s in self.train_sets for scale in self.train_scales]
        wanted += [(s, self.scale, False) for s in [*self.val_sets, *self.test_sets]]
        for image_set, scale, training in wanted:
            if (image_set, scale) in self._pairs:
                continue
            pairs = list_pairs(image_set, self.root, scale, hp.lr, hp.cache_dir)
            patch = hp.patch_size - hp.patch_size % scale if training else None
            problems = check_pairs(
                pairs,
                scale,
                patch,
                decode=self._decode_check(training),
                workers=usable_cpus(),
                what=f"{image_set.name} images",
            )
            pairs = drop_bad_pairs(pairs, problems, image_set.name, hp.on_bad_image)
            if training and hp.downscaled_copies:
                pairs = self._with_downscaled_copies(pairs, image_set, patch)
            self._pairs[(image_set, scale)] = pairs

    def _with_downscaled_copies(
        self, pairs: list[ImagePair], image_set: ImageSet, patch: int
    ) -> list[ImagePair]:
        """``pairs`` and their ``data.downscaled_copies``; a copy smaller than a patch is an
        error, or left out with ``on_bad_image=skip``."""
        hp = self.hparams
        sizes = {pair.hr: image_header(pair.hr) for pair in pairs}
        kept, small = [], []
        for pair in downscaled_copies(pairs, hp.downscaled_copies):
            width, height = downscaled_size(
                sizes[pair.hr].width, sizes[pair.hr].height, pair.downscale
            )
            (small if min(width, height) < patch else kept).append((pair, width, height))
        if small and hp.on_bad_image == "error":
            listing = "\n".join(
                f"  {pair.hr} x{pair.downscale:g}: {w}x{h}" for pair, w, h in small[:10]
            )
            raise DataError(
                f"{image_set.name}: {len(small)} downscaled copies are smaller than "
                f"data.patch_size={patch}:\n{listing}\nLower data.patch_size, drop the "
                "smallest factors of data.downscaled_copies, or set data.on_bad_image=skip to "
                "leave those copies out."
            )
        if small:
            log.warning(
                "%s: %d downscaled copies smaller than data.patch_size=%d are left out",
                image_set.name,
                len(small),
                patch,
            )
        return [pair for pair, _, _ in kept]

    def _decode_check(self, training: bool) -> Callable[[Path], object]:
        """How :meth:`verify` decodes one file: into the decoded-image cache for training
        images (what the loader reads later), else decoded and dropped. A file decoded once
        by this module is not decoded again (multi-scale training lists HR once per scale)."""
        decoded = self.decoded if training else None

        def decode(path: Path) -> None:
            if path in self._decoded_ok:
                return
            if decoded is None:
                read_image(path)
            else:
                decoded.get(path, lambda: read_image(path))
            self._decoded_ok.add(path)

        return decode

    def prepare_data(self) -> None:
        """Download the configured sets when ``download`` is set, then build the decoded-image
        cache when ``cache`` is set (:meth:`build_cache`). Lightning runs this on one process
        per node while the others wait; the pipeline calls it before it starts them."""
        if self.hparams.download:
            # Imported here: srlab.data.download is also a `python -m` entry point.
            from srlab.data.download import download_sets

            sets = [*self.train_sets, *self.val_sets, *self.test_sets]
            download_sets(sets, self.root, scales=sorted({self.scale, *self.train_scales}))
        self.build_cache()

    def build_cache(self) -> int:
        """Decode every training image (HR, and LR at every training scale) into the
        decoded-image cache, in parallel and with a progress bar; entries already there are
        kept. Setup then only opens files.

        Returns:
            How many entries were made (0 without ``cache`` or a training set).
        """
        if self.decoded is None or not self.train_sets:
            return 0
        before = self.decoded.made
        self.verify()  # decodes the image files into the cache, checking each
        # One job per HR image with all its scales: they share its HR entry.
        jobs: dict[Path, list[tuple[ImagePair, int]]] = {}
        for scale in self.train_scales:
            for pair in self.train_pairs(scale):
                jobs.setdefault(pair.hr, []).append((pair, scale))
        self.decoded.build(
            list(jobs.values()), self._decode, workers=usable_cpus(), what="training images"
        )
        return self.decoded.made - before

    def _decode(self, job: list[tuple[ImagePair, int]]) -> None:
        for pair, scale in job:
            load_pair(pair, scale, channels=None, decoded=self.decoded)

    def require_train_set(self) -> None:
        """Raise a helpful error if this module has no training set, or (after
        :meth:`verify`) one too small for a single batch."""
        if not self.train_sets:
            raise ConfigError(
                "data.train is null: this data config is for evaluation. Train with "
                "data=sample, data=div2k or data=folder data.hr_dir=<folder>, and list "
                "evaluation sets in data.val_sets."
            )
        if all((s, self.scale) in self._pairs for s in self.train_sets):
            self._require_one_batch()

    def _require_one_batch(self) -> None:
        # The loader drops the last incomplete batch (patches of one batch share a size), so
        # fewer patches than a batch make an empty epoch: Lightning would end at step 0.
        # Per DDP rank it is (patches // W) // (batch_size // W): zero exactly when
        # patches < batch_size, whatever W.
        hp = self.hparams
        images = len(self.train_pairs())
        patches = images * hp.repeat
        if patches >= hp.batch_size:
            return
        names = "+".join(s.name for s in self.train_sets)
        repeat = -(-hp.batch_size // images)
        raise ConfigError(
            f"data.batch_size={hp.batch_size} but the training set {names} has {images} "
            f"image(s) x data.repeat={hp.repeat} = {patches} patches per epoch: an epoch would "
            "hold no full batch and training would stop at step 0. Lower data.batch_size to "
            f"at most {patches}, or set data.repeat={repeat} (or more)"
        )

    def setup(self, stage: str | None = None) -> None:
        """Locate the files; fitting also needs a training set."""
        self.verify()
        if stage in (None, "fit"):
            self.require_train_set()

    def train_dataloader(self) -> DataLoader:
        """Shuffled random patches, dropping the last incomplete batch."""
        hp = self.hparams
        datasets = {
            scale: PatchDataset(
                self.train_pairs(scale),
                scale,
                hp.patch_size - hp.patch_size % scale,
                repeat=hp.repeat,
                augment=hp.augment,
                in_memory=hp.in_memory,
                decoded=self.decoded,
            )
            for scale in self.train_scales
        }
        dataset = (
            MultiScaleDataset(datasets) if len(datasets) > 1 else datasets[self.train_scales[0]]
        )
        if self.degradation is not None:
            dataset = WithDegradationParams(dataset, self.degradation)
        trainer = self.trainer
        sampler = TrainSampler(
            len(dataset),
            self.per_rank_batch_size(),
            self.train_scales,
            # The run's seed, which the pipeline gives Lightning's seed_everything.
            seed=torch.initial_seed() if self.seed is None else self.seed,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        if self._resume_position is not None:
            epoch, batches = self._resume_position
            sampler.resume(epoch, batches * self.per_rank_batch_size())
        return self._loader(
            dataset, batch_size=self.per_rank_batch_size(), sampler=sampler, drop_last=True
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Degrade a training batch on its device (with ``degradation``): ``lr`` becomes the
        degraded HR patches, ``hr`` the target; the first batch after each validation is kept
        for the task to log (:meth:`take_degradation_preview`)."""
        if self.degradation is None or not isinstance(batch, dict) or "degradation" not in batch:
            return batch
        params = batch.pop("degradation")
        scale = int(batch["scale"][0]) if "scale" in batch else self.scale
        hr = batch["hr"]
        batch["lr"], batch["hr"] = self.degradation(hr, params, scale)
        if self._preview is None:
            step = self.trainer.global_step if self.trainer is not None else 0
            self._preview = DegradationPreview.of_batch(
                batch["lr"], hr, params, batch["name"], step
            )
        return batch

    def take_degradation_preview(self) -> DegradationPreview | None:
        """The first degraded training batch since the last call (None without degradation
        or before any), so that each validation logs the batch that followed the previous one."""
        preview, self._preview = self._preview, None
        return preview

    def state_dict(self) -> dict[str, Any]:
        """Where training is in the data: the epoch and how many batches of it were trained.

        Saved in every checkpoint, so a resumed run starts at the next batch the interrupted
        one would have trained (:class:`~srlab.data.sampling.TrainSampler`).
        """
        trainer = self.trainer
        # Also during the validations inside fit, where the best checkpoint is saved.
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        # `processed`: batches whose optimizer step ran (a save in on_train_batch_end comes
        # before the batch counts as `completed`).
        return {"epoch": trainer.current_epoch, "batches_done": progress.processed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the training order where :meth:`state_dict` left it."""
        if state_dict:
            self._resume_position = (state_dict["epoch"], state_dict["batches_done"])

    def per_rank_batch_size(self) -> int:
        """``data.batch_size`` divided by the number of DDP processes.

        Raises:
            ConfigError: the global batch is not divisible by the world size.
        """
        world = self.trainer.world_size if self.trainer is not None else 1
        batch = self.hparams.batch_size
        if batch % world:
            raise ConfigError(
                f"data.batch_size={batch} is the global batch and must be divisible by the "
                f"{world} DDP processes (trainer.devices x trainer.num_nodes): use e.g. "
                f"data.batch_size={max(world, batch - batch % world)}"
            )
        return batch // world

    def val_dataloader(self) -> list[DataLoader]:
        """One loader of whole images per validation set."""
        return [self._eval_loader(image_set) for image_set in self.val_sets]

    def test_dataloader(self) -> list[DataLoader]:
        """One loader of whole images per test set."""
        return [self._eval_loader(image_set) for image_set in self.test_sets]

    def _eval_loader(self, image_set: ImageSet) -> DataLoader:
        # Whole images differ in size, so evaluation batches hold one image.
        dataset = EvalDataset(self._pairs[(image_set, self.scale)], self.scale, crop=self.eval_crop)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Every image once across ranks (Lightning's default sampler pads with repeats).
            sampler = EvalDistributedSampler(dataset)
            return self._loader(dataset, batch_size=1, sampler=sampler, drop_last=False)
        return self._loader(dataset, batch_size=1, shuffle=False, drop_last=False)

    def num_workers(self) -> int:
        """Loader workers per training process (``num_workers``, with ``auto`` resolved for
        this node and the trainer's processes on it)."""
        if self.hparams.num_workers != "auto":
            return self.hparams.num_workers
        processes = self.trainer.num_devices if self.trainer is not None else 1
        # Each training process keeps a core for itself (on a 2-core CPU the network needs
        # them); 8 workers outrun any GPU with the decoded cache (~1000 patches/s each) and
        # more only add start-up time and memory.
        return max(0, min(8, usable_cpus() // processes - 1))

    def _pin_memory(self) -> bool:
        if self.hparams.pin_memory is not None:
            return self.hparams.pin_memory
        # Pinned pages only speed up copies to a CUDA device; elsewhere they cost memory.
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def _loader(self, dataset, **batching: Any) -> DataLoader:
        workers = self.num_workers()
        return DataLoader(
            dataset,
            **batching,
            num_workers=workers,
            pin_memory=self._pin_memory(),
            persistent_workers=workers > 0 and self.hparams.persistent_workers,
            prefetch_factor=self.hparams.prefetch_factor if workers > 0 else None,
        )


def _check_unique_names(sets: list[ImageSet], key: str, allow_empty: bool = False) -> None:
    names = [image_set.name for image_set in sets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key} names a set twice: {names}; metric names would collide")
    if not sets and not allow_empty:
        raise ConfigError(f"{key} is empty: list at least one evaluation set, e.g. [set5]")


def usable_cpus() -> int:
    """The CPU cores this process may run on (its affinity: a SLURM or container allocation),
    not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_num_workers(num_workers: int | str) -> None:
    if num_workers == "auto" or (isinstance(num_workers, int) and num_workers >= 0):
        return
    raise ConfigError(
        f"data.num_workers={num_workers!r}: use a number of loader processes (0 loads in the "
        "training process) or auto"
    )


def _decoded_cache(cache: bool, cache_dir: str | Path | None) -> DecodedCache | None:
    if not cache:
        return None
    if cache_dir is None:
        raise ConfigError(
            "data.cache=true needs data.cache_dir, the folder that holds the decoded images "
            "(<cache_dir>/decoded): set it, or set data.cache=false to decode per use"
        )
    return DecodedCache(Path(cache_dir).expanduser() / "decoded")

"""Super-resolve image files: the library behind ``src/infer.py``.

``python src/infer.py ckpt_path=<checkpoint> input=<file|folder|glob> output=<dir>``
reads every image, runs the network on it (whole, tiled, or as the x8 self-ensemble; in fp32,
bf16 or fp16; several images of one size per batch) and writes ``<output>/<name><suffix>.<ext>``,
keeping the folder structure of a folder input. Everything here is a plain function of its
arguments, so tests drive it in-process; only the entry point turns failures into an exit code.

What a file keeps through the round trip:

* **Channels**: grayscale stays grayscale, RGB stays RGB (:func:`srlab.models.channels.
  super_resolve` adapts them to the network's own channels). An alpha channel is not shown to
  the network: it is upscaled on its own with MATLAB bicubic (:func:`srlab.imaging.imresize`)
  and re-attached.
* **Bit depth**: a 16-bit image (PNG or TIFF) runs through the network as ``value / 65535``
  floats and is written as a 16-bit PNG (:mod:`srlab.imaging.io` reads and writes the files).
* **Orientation and colour profile**: an EXIF orientation is applied on reading (the output
  carries no orientation tag, so it must be upright), and an ICC profile is copied to the
  output.

The network side (tiling, self-ensemble, precision, batches, the device) is
:mod:`srlab.imaging.predict`; this module finds the inputs, plans and runs the jobs, and
reports.

A file that cannot be read (or written) is reported with its reason and skipped; the others
are still processed, and :class:`InferenceReport` lists what failed.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from srlab.app.network import build_network
from srlab.errors import ConfigError
from srlab.imaging.io import (
    IMAGE_EXTENSIONS,
    UnreadableImageError,
    image_header,
    is_image_file,
    read_full,
    write_image,
)
from srlab.imaging.predict import (
    PRECISIONS,
    LoadedImage,
    Predictor,
    autocast_dtype,
    make_predictor,
    resolve_device,
    upscale_images,
)
from srlab.imaging.tiling import parse_tile
from srlab.runtime.config_check import check_values

log = logging.getLogger(__name__)

#: Output formats and the file extension each is written with.
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
_FORMAT_ALIASES = {"jpeg": "jpg"}

# -- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceOptions:
    """How images are super-resolved and written (the keys of ``conf/infer.yaml``).

    Args:
        scale: the upscaling factor; the network must upsample by it.
        tile: LR tile side in pixels (None: whole images; 0 reads as None, as other SR tools
            do). Bounds memory on large images. ``auto``: the largest tile that fits
            ``memory_budget_gb``, whole images where they fit.
        tile_overlap: LR pixels of context around each tile; at least the network's
            receptive field radius makes tiled output equal untiled output.
        self_ensemble: average the 8 flips/transpositions (EDSR's "+"; 8x slower).
        memory_budget_gb: GiB one forward pass may use with ``tile=auto`` (None: 70 % of a
            GPU's free memory, 50 % of the CPU's).
        precision: ``32``, ``bf16`` (CPU or CUDA) or ``16`` (CUDA only), as autocast.
        batch: images per forward pass; only images of one size and channel count share one.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        format: output format: ``png``, ``jpg`` or ``webp``.
        quality: JPEG / WebP quality, 1-100.
        suffix: appended to each output's file stem (``baby`` -> ``baby_x4.png``).
        recursive: look for images in the subfolders of a folder input too.
        skip_existing: leave outputs that already exist alone (resume an interrupted run).
        progress: show a progress bar.
    """

    scale: int
    tile: int | str | None = None
    tile_overlap: int = 32
    self_ensemble: bool = False
    memory_budget_gb: float | None = None
    precision: str = "32"
    batch: int = 1
    device: str = "auto"
    format: str = "png"
    quality: int = 95
    suffix: str = ""
    recursive: bool = True
    skip_existing: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        # Normalise the forms a command line produces (precision=32 is an int, format=JPG).
        object.__setattr__(self, "precision", str(self.precision).lower())
        fmt = str(self.format).lower().lstrip(".")
        object.__setattr__(self, "format", _FORMAT_ALIASES.get(fmt, fmt))
        if self.format not in FORMATS:
            raise ConfigError(f"format={self.format!r}: use one of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: use 32, bf16 or 16 (CUDA only)")
        object.__setattr__(self, "tile", parse_tile(self.tile))
        if self.tile_overlap < 0:
            raise ConfigError(f"tile_overlap={self.tile_overlap}: must be >= 0")
        if self.batch < 1:
            raise ConfigError(f"batch={self.batch}: must be >= 1")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality={self.quality}: must be within 1-100")
        if "/" in self.suffix or os.sep in self.suffix:
            raise ConfigError(f"suffix={self.suffix!r}: a file-name suffix cannot hold '/'")

    @classmethod
    def from_config(cls, cfg: DictConfig) -> InferenceOptions:
        """The options of an ``infer`` config (``conf/infer.yaml``)."""
        inference = cfg.inference
        return cls(
            scale=int(cfg.scale),
            tile=inference.get("tile"),
            tile_overlap=int(inference.tile_overlap),
            self_ensemble=bool(inference.self_ensemble),
            memory_budget_gb=inference.get("memory_budget_gb"),
            precision=str(inference.precision),
            batch=int(inference.batch),
            device=str(inference.device),
            format=str(cfg.format),
            quality=int(cfg.quality),
            suffix=str(cfg.suffix or ""),
            recursive=bool(cfg.recursive),
            skip_existing=bool(cfg.skip_existing),
            progress=bool(cfg.progress),
        )


# -- inputs and outputs ------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One image to super-resolve: where it is read from and where its result goes."""

    source: Path
    target: Path


def find_inputs(
    spec: str, recursive: bool = True, exclude: Path | None = None
) -> tuple[Path, list[Path]]:
    """The image files named by ``input=``: a file, a folder or a glob.

    Returns the folder that output paths are kept relative to, and the files, sorted. A
    folder contributes its image files (``srlab.imaging.io.IMAGE_EXTENSIONS``; with
    ``recursive``, those of its subfolders too); a glob (``photos/**/*.png``; ``**`` spans
    folders) contributes the image files it matches, relative to its leading folder. Names
    starting with ``.`` are skipped (macOS ``._photo.jpg`` sidecars are not images), and so is
    everything under ``exclude`` (the output folder, when it lies inside the input folder, so
    that a second run does not upscale the first run's results).

    Raises:
        ConfigError: the input does not exist or names no image.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        base, candidates = path, path.rglob("*") if recursive else path.iterdir()
        where = f"{path}{' or its subfolders' if recursive else ''}"
    elif any(char in spec for char in "*?["):
        parts = Path(os.path.expanduser(spec)).parts
        fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base = Path(*parts[:fixed]) if fixed else Path(".")
        candidates = (Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
        where = f"the files matching {spec}"
    else:
        raise ConfigError(
            f"input={spec}: no such file or folder. Give an image, a folder of images or a "
            "glob such as 'photos/**/*.png' (quoted)"
        )
    excluded = exclude.resolve() if exclude is not None else None
    files = sorted(
        p
        for p in candidates
        if (p.is_file() or (p.is_symlink() and not p.exists()))  # a dangling link is reported
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(base).parts)
        and not (excluded is not None and p.resolve().is_relative_to(excluded))
    )
    if not files:
        raise ConfigError(f"input={spec}: no image files ({' '.join(IMAGE_EXTENSIONS)}) in {where}")
    return base, files


def plan_jobs(
    base: Path, files: Iterable[Path], output_dir: Path, fmt: str, suffix: str = ""
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Pair each input with its output path, keeping its folder relative to ``base``.

    ``<base>/a/b.jpg`` becomes ``<output_dir>/a/b<suffix>.<fmt>``. Returns the jobs, and
    the inputs refused with the reason: one whose output would overwrite the input itself, or
    the output of an earlier input (``b.jpg`` and ``b.png`` in one folder).
    """
    extension = FORMATS[fmt]
    jobs: list[Job] = []
    refused: list[tuple[Path, str]] = []
    owners: dict[Path, Path] = {}
    for source in files:
        relative = source.relative_to(base)
        target = output_dir / relative.parent / f"{relative.stem}{suffix}{extension}"
        key = target.resolve()
        if key == source.resolve():
            reason = f"its output {target} would overwrite it: use another output= or a suffix="
        elif key in owners:
            reason = (
                f"its output {target} is also the output of {owners[key]}: rename one of them, "
                "or run them separately"
            )
        else:
            owners[key] = source
            jobs.append(Job(source, target))
            continue
        refused.append((source, reason))
    return jobs, refused


def refuse_overwrites_in_input(jobs: Sequence[Job], base: Path, output_dir: Path) -> None:
    """Refuse a run that would overwrite files inside the input's folder.

    With ``output=`` inside the input folder (``input=D output=D/sub``, or a single file's own
    folder), the files already there may be the user's originals: ``D/sub/a.png`` would be
    replaced by the result of ``D/a.png``. Outputs outside the input are overwritten as
    usual (a re-run), and ``skip_existing=true`` keeps existing files anywhere.

    Raises:
        ConfigError: some output would replace an existing file under ``base``.
    """
    inside = base.resolve()
    clobbered = [
        job for job in jobs if job.target.exists() and job.target.resolve().is_relative_to(inside)
    ]
    if not clobbered:
        return
    first = clobbered[0]
    raise ConfigError(
        f"output={output_dir} lies inside the input folder {base}, and {len(clobbered)} "
        f"file(s) there would be overwritten, e.g. {first.target} by the result of "
        f"{first.source}; they may be originals, not earlier results. Give an output folder "
        "outside the input, or skip_existing=true to keep every existing file"
    )


def group_jobs(jobs: Sequence[Job], batch: int) -> list[list[Job]]:
    """Jobs in groups of at most ``batch`` whose images (probably) share size and channels.

    Sizes come from the file headers (cheap: nothing is decoded). Groups keep the order in
    which their first image appears. A file whose header cannot be read gets a group of its
    own, so that loading it reports the error. The header can still mislead (an EXIF rotation
    swaps width and height), so :func:`run_jobs` checks the decoded images again.
    """
    if batch == 1:
        return [[job] for job in jobs]
    by_key: dict[Any, list[Job]] = {}
    for index, job in enumerate(jobs):
        by_key.setdefault(_peek_shape(job.source) or ("unreadable", index), []).append(job)
    return [same[i : i + batch] for same in by_key.values() for i in range(0, len(same), batch)]


def _peek_shape(path: Path) -> tuple[int, int, int] | None:
    try:
        header = image_header(path)
    except Exception:  # any failure is reported by load_image, which reads the file for real
        return None
    return header.width, header.height, header.channels


# -- reading -----------------------------------------------------------------------------


def load_image(path: str | Path) -> LoadedImage:
    """Read an image file for inference, keeping alpha, 16-bit depth and the ICC profile.

    Raises:
        UnreadableImageError: (an :class:`~srlab.errors.ImageReadError`) the file is missing,
            truncated, corrupt or not a supported image; the message names the file and why.
    """
    image = read_full(path)
    return LoadedImage.from_array(image.array, image.bits, image.icc_profile)


# -- running -----------------------------------------------------------------------------


@dataclass
class InferenceReport:
    """What a run did: the outputs written, the inputs skipped and those that failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed


def run_jobs(
    jobs: Sequence[Job],
    predict: Predictor,
    options: InferenceOptions,
    device: torch.device,
    report: InferenceReport | None = None,
) -> InferenceReport:
    """Super-resolve and write every job; a file that fails is recorded and skipped."""
    report = report or InferenceReport()
    start, notes_seen = time.perf_counter(), set()
    pending = []
    for job in jobs:
        if options.skip_existing and job.target.exists():
            report.skipped.append(job.source)
        else:
            pending.append(job)
    columns = (
        TextColumn("[bold]upscaling x{task.fields[scale]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[name]}"),
    )
    with Progress(*columns, disable=not options.progress) as progress:
        task = progress.add_task("", total=len(pending), scale=options.scale, name="")

        def fail(job: Job, reason: str) -> None:
            report.failed.append((job.source, reason))
            progress.console.print(f"[red]failed[/red] {job.source}: {reason}", soft_wrap=True)
            progress.advance(task)

        for group in group_jobs(pending, options.batch):
            progress.update(task, name=group[0].source.name)
            loaded: list[tuple[Job, LoadedImage]] = []
            for job in group:
                try:
                    loaded.append((job, load_image(job.source)))
                except UnreadableImageError as error:
                    fail(job, f"unreadable: {error.reason}")
            for same in _same_shape(loaded):
                try:
                    results = upscale_images(
                        predict, [image for _, image in same], options.scale, device
                    )
                except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as error:
                    # Only running out of memory is this image's fault (too large for the
                    # settings); any other RuntimeError is a bug and must surface.
                    if isinstance(error, RuntimeError) and not _is_out_of_memory(error):
                        raise
                    for job, _ in same:
                        fail(
                            job,
                            f"out of memory ({_first_line(error)}): set tile=<LR "
                            "pixels> (e.g. tile=256), or a smaller batch",
                        )
                    continue
                for (job, _), result in zip(same, results, strict=True):
                    try:
                        notes = write_image(
                            job.target, result.to_array(), options.quality, result.icc_profile
                        )
                    except (OSError, ValueError) as error:
                        fail(job, f"cannot write {job.target}: {error}")
                        continue
                    for note in set(notes) - notes_seen:
                        notes_seen.add(note)
                        log.warning("%s", note)
                    report.written.append(job.target)
                    report.megapixels += result.pixels.shape[1] * result.pixels.shape[2] / 1e6
                    progress.advance(task)
    report.seconds += time.perf_counter() - start
    return report


def _is_out_of_memory(error: BaseException) -> bool:
    # CUDA raises torch.cuda.OutOfMemoryError; the CPU allocator a RuntimeError saying so.
    return isinstance(error, torch.cuda.OutOfMemoryError | MemoryError) or (
        "can't allocate memory" in str(error) or "out of memory" in str(error).lower()
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _same_shape(
    loaded: list[tuple[Job, LoadedImage]],
) -> list[list[tuple[Job, LoadedImage]]]:
    groups: dict[tuple[int, ...], list[tuple[Job, LoadedImage]]] = {}
    for job, image in loaded:
        groups.setdefault(tuple(image.pixels.shape), []).append((job, image))
    return list(groups.values())


def infer(cfg: DictConfig) -> InferenceReport:
    """Super-resolve the images of ``cfg.input`` into ``cfg.output`` (``conf/infer.yaml``).

    Returns the report (failed files included); the entry point turns failures into a
    non-zero exit status. Config problems (no input, weights that do not fit) raise
    :class:`~srlab.errors.ConfigError` before any image is processed.
    """
    if OmegaConf.is_missing(cfg, "input") or not cfg.input:
        raise ConfigError("no images given: add input=<image file, folder or glob>")
    check_values(cfg)
    network = build_network(cfg)  # sets cfg.scale to the checkpoint's when none is given
    options = InferenceOptions.from_config(cfg)
    output_dir = Path(str(cfg.output)).expanduser()
    device = resolve_device(options.device)
    dtype = autocast_dtype(options.precision, device)
    base, files = find_inputs(str(cfg.input), options.recursive, exclude=output_dir)
    jobs, refused = plan_jobs(base, files, output_dir, options.format, options.suffix)
    if not options.skip_existing:
        refuse_overwrites_in_input(jobs, base, output_dir)
    net = network.net.to(device)  # build_network checked its scale
    predict = make_predictor(
        net,
        options.scale,
        options.tile,
        options.tile_overlap,
        options.self_ensemble,
        dtype,
        memory_budget_gb=options.memory_budget_gb,
    )
    report = InferenceReport(failed=list(refused))
    for source, reason in refused:
        log.error("skipped %s: %s", source, reason)
    run_jobs(jobs, predict, options, device, report)
    print_report(report, output_dir, len(files))
    return report


def print_report(report: InferenceReport, output_dir: Path, total: int) -> None:
    """Log the summary of a run: counts, speed, and every file that failed with its reason.

    Logged rather than printed, so that the run's ``infer.log`` keeps the list of failures.
    """
    speed = report.megapixels / report.seconds if report.seconds else 0.0
    summary = (
        f"{len(report.written)} of {total} images written to {output_dir} in "
        f"{report.seconds:.1f} s ({speed:.2f} output megapixels/s)"
    )
    if report.skipped:
        summary += f"; {len(report.skipped)} skipped (output exists, skip_existing=true)"
    log.info("%s", summary)
    if report.failed:
        lines = "".join(f"\n  {source}: {reason}" for source, reason in report.failed)
        log.error("%d file(s) failed:%s", len(report.failed), lines)

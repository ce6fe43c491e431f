"""Checking every image of a dataset before training: readable, consistent sizes, big enough.

Two passes over every file, both before the first step:

1. the header and the file's structure (:func:`image_size`: not empty, an image, not cut
   short where the format's structure shows it, not a decompression bomb, not a dangling
   link), the LR size against HR / scale and the HR size against the patch;
2. the pixels: every file that passed is decoded in full (:func:`decode_problems`), since
   only decoding finds a JPEG cut inside its entropy-coded data or a PNG whose compressed
   stream is broken under valid checksums. For training images the decoded pixels go
   straight into the decoded-image cache (``data.cache``), so with the cache this pass is
   the cache build and costs nothing extra; without it, each image is decoded once more per
   run (in parallel over the usable cores).

Problems are collected over the whole dataset and reported together, each with its file,
so one run of the check tells everything that has to be fixed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from srlab.data.datasets import ImagePair
from srlab.data.parallel import run_parallel
from srlab.errors import ConfigError, DataError, ImageReadError
from srlab.imaging.io import UnreadableImageError, image_header

log = logging.getLogger(__name__)

ON_BAD_IMAGE = ("error", "skip")


@dataclass(frozen=True)
class Problem:
    """What is wrong with one file."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, after checking the file's integrity.

    Raises:
        DataError: the file is empty, not an image, or truncated/corrupt.
    """
    if path.is_symlink() and not path.exists():
        raise DataError(f"a symbolic link to {os.readlink(path)}, which does not exist")
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)")
    try:
        # verify walks the whole file (chunk CRCs for PNG) without decoding pixels, so
        # truncated files are found now rather than at step 7000.
        header = image_header(path, verify=True)
    except UnreadableImageError as error:
        raise DataError(f"not a readable image ({error.reason})") from error
    return header.width, header.height


def check_pairs(
    pairs: list[ImagePair],
    scale: int,
    patch_size: int | None = None,
    decode: Callable[[Path], object] | None = None,
    workers: int = 1,
    what: str = "images",
) -> list[Problem]:
    """Every problem of ``pairs``: unreadable files, LR/HR sizes that disagree with the scale,
    and (when ``patch_size`` is given, for training) HR images smaller than one patch.

    Args:
        pairs: the images of one set.
        scale: the SR scale.
        patch_size: the HR training patch (None for evaluation sets).
        decode: decodes one file in full (raising an :class:`~srlab.errors.ImageReadError`
            if it cannot); None checks headers only.
        workers: threads that decode.
        what: what the files are, for the progress bar and the log.
    """
    problems = _header_problems(pairs, scale, patch_size)
    if decode is not None:
        bad = {problem.path for problem in problems}
        files = [f for pair in pairs for f in (pair.hr, pair.lr) if f is not None and f not in bad]
        problems += decode_problems(files, decode, workers, what)
    return problems


def decode_problems(
    files: Sequence[Path], decode: Callable[[Path], object], workers: int, what: str = "images"
) -> list[Problem]:
    """The files of ``files`` that ``decode`` cannot decode, each with the reason; decoded in
    ``workers`` threads (Pillow releases the GIL while it decodes), in the order given."""
    files = list(dict.fromkeys(files))
    reasons: dict[Path, str] = {}

    def attempt(path: Path) -> None:
        try:
            decode(path)
        except UnreadableImageError as error:
            reasons[path] = f"cannot be decoded ({error.reason})"
        except ImageReadError as error:
            reasons[path] = f"cannot be decoded ({error})"
        except OSError as error:  # removed or unreadable since its header was read
            reasons[path] = f"cannot be read ({error.strerror or error})"

    start = time.perf_counter()
    run_parallel(files, attempt, workers, f"checking {what}")
    log.info("decoded %d %s in %.1f s", len(files), what, time.perf_counter() - start)
    return [Problem(path, reasons[path]) for path in files if path in reasons]


def _header_problems(pairs: list[ImagePair], scale: int, patch_size: int | None) -> list[Problem]:
    problems = []
    for pair in pairs:
        try:
            width, height = image_size(pair.hr)
        except DataError as error:
            problems.append(Problem(pair.hr, str(error)))
            continue
        crop_w, crop_h = width - width % scale, height - height % scale
        if patch_size is not None and min(crop_w, crop_h) < patch_size:
            problems.append(
                Problem(pair.hr, f"{width}x{height} is smaller than data.patch_size={patch_size}")
            )
        if pair.lr is None:
            continue
        try:
            lr_w, lr_h = image_size(pair.lr)
        except DataError as error:
            problems.append(Problem(pair.lr, str(error)))
            continue
        if (lr_w * scale, lr_h * scale) != (crop_w, crop_h):
            problems.append(
                Problem(
                    pair.lr,
                    f"{lr_w}x{lr_h} (WxH) but its HR {pair.hr.name} is {width}x{height}, "
                    f"{crop_w}x{crop_h} cropped to a multiple of x{scale}: LR must be HR/{scale}",
                )
            )
    return problems


def drop_bad_pairs(
    pairs: list[ImagePair],
    problems: list[Problem],
    set_name: str,
    on_bad_image: str,
) -> list[ImagePair]:
    """Apply ``data.on_bad_image``: raise one error listing every problem, or skip those pairs.

    Raises:
        DataError: with ``error`` (the default) and any problem, or when nothing is left.
    """
    if on_bad_image not in ON_BAD_IMAGE:
        raise ConfigError(f"data.on_bad_image={on_bad_image!r}: use one of {ON_BAD_IMAGE}")
    if not problems:
        return pairs
    listing = "\n".join(f"  {problem}" for problem in problems)
    if on_bad_image == "error":
        raise DataError(
            f"{set_name}: {len(problems)} bad image(s):\n{listing}\nFix or remove these files, "
            "or set data.on_bad_image=skip to train without them."
        )
    bad = {problem.path for problem in problems}
    kept = [pair for pair in pairs if pair.hr not in bad and pair.lr not in bad]
    for problem in problems:
        log.warning("%s: skipping %s", set_name, problem)
    if not kept:
        raise DataError(f"{set_name}: every image is bad:\n{listing}")
    return kept

"""Fetching the catalog's datasets: download, verify, extract safely, lay out, count.

:func:`download_sets` (and :func:`download_set` for one) acts on the :class:`DownloadInfo` of
catalog sets (:mod:`srlab.data.catalog`)::

    python -m srlab.data.download set5 set14 div2k_train --root data --scale 4

For each folder a set needs (HR, and the LR of the chosen scales) it

1. skips the folder when it is already there with the expected number of images;
2. fetches the archive that holds it into ``<root>/downloads/`` with
   :func:`srlab.fetch.fetch` (a ``.part`` file renamed when complete, an interrupted
   transfer retried from the start, SHA-256 or MD5 verified where known, a progress bar
   with bytes and speed on a terminal); an archive already in ``<root>/downloads/``
   (downloaded by hand, say) is verified and used without any network access; a failed
   download is the fetch's own :class:`~srlab.fetch.NetworkError` or
   :class:`~srlab.fetch.ChecksumError`, whose hint lists what to download by hand and where;
3. extracts the wanted folders safely and moves them into place complete
   (:func:`srlab.data.archives.extract_archive`): an error at any step leaves no partial
   folder and no ``.part`` file.

Archives fetched in the call are deleted once extracted (``keep_archives`` keeps them). One
archive that serves several sets (EDSR's ``benchmark.tar``: Set5, Set14, BSD100, Urban100)
is fetched once per call. Base URLs are replaced by a mirror with ``base_url`` or the
``SRLAB_DATASET_MIRROR`` environment variable (the archive's file name is appended to it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srlab.data.archives import ArchiveLayoutError, DownloadError, count_images, extract_archive
from srlab.data.catalog import CATALOG, Archive, Extract, ImageSet, get_image_set
from srlab.errors import SRLabError
from srlab.fetch import ChecksumError, FetchError, WriteError, fetch, file_digest

__all__ = [
    "MIRROR_ENV",
    "DownloadError",
    "archive_url",
    "download_set",
    "download_sets",
    "main",
    "missing_folders",
]

log = logging.getLogger(__name__)

SetSpec = str | Mapping[str, Any] | ImageSet
"""A catalog name (``set5``), its :class:`ImageSet`, or a mapping describing a folder."""

MIRROR_ENV = "SRLAB_DATASET_MIRROR"
"""Environment variable with a base URL that replaces the official hosts of every archive."""

DOWNLOADS_DIR = "downloads"
"""Folder under the data root where archives are downloaded (and may be put by hand)."""


@dataclass(frozen=True)
class _Job:
    """One folder to create: the set it belongs to, the archive it comes from, its mapping."""

    image_set: ImageSet
    archive: Archive
    extract: Extract


def archive_url(archive: Archive, base_url: str | None = None) -> str:
    """The URL to fetch ``archive`` from: its own, or its file name under a mirror.

    The mirror is ``base_url``, else the ``SRLAB_DATASET_MIRROR`` environment variable.

    Example:
        >>> from srlab.data.catalog import CATALOG
        >>> archive = CATALOG["div2k_valid"].download.archives[0]
        >>> archive_url(archive, "http://127.0.0.1:8000/mirror/")
        'http://127.0.0.1:8000/mirror/DIV2K_valid_HR.zip'
    """
    base = base_url if base_url is not None else os.environ.get(MIRROR_ENV) or None
    return archive.url if base is None else f"{base.rstrip('/')}/{archive.filename}"


def missing_folders(
    spec: SetSpec, root: str | Path, scales: Iterable[int] | None = None
) -> list[Path]:
    """The folders of a catalog set that are absent or lack images (empty: nothing to fetch).

    Args:
        spec: a catalog name (``set5``) or its :class:`ImageSet`.
        root: the data root (``data.root``).
        scales: the LR scales wanted (None: every scale the set's archives have).
    """
    image_set = get_image_set(spec)
    root = Path(root).expanduser()
    info = image_set.download
    if info is None:
        return []
    wanted = None if scales is None else tuple(int(s) for s in scales)
    return [
        root / extract.target
        for _, extract in info.extracts(wanted)
        if not _is_complete(root / extract.target, extract.count)
    ]


def download_set(spec: SetSpec, root: str | Path, **options: Any) -> Path:
    """Download one catalog set into ``root``; return its HR folder.

    ``options`` are those of :func:`download_sets`.
    """
    return download_sets([spec], root, **options)[0]


def download_sets(
    specs: Sequence[SetSpec],
    root: str | Path,
    *,
    scales: Iterable[int] | None = None,
    force: bool = False,
    base_url: str | None = None,
    verify: bool = True,
    keep_archives: bool = False,
    retries: int = 2,
    backoff: float = 1.0,
    progress: bool | None = None,
) -> list[Path]:
    """Download, verify and lay out catalog sets under ``root``; return their HR folders.

    Folders already complete (the expected number of images) are skipped, so calling this
    before every run costs a few directory listings once the data is there.

    Args:
        specs: catalog names (``["set5", "div2k_train"]``), their :class:`ImageSet`, or
            mappings describing folders (``data.train`` / ``data.val_sets`` entries).
        root: the data root (``data.root``); created when missing.
        scales: the LR scales to fetch (None: every scale; ``()``: HR only, srlab then makes
            LR by MATLAB bicubic). Sets with no LR archives ignore it.
        force: fetch and replace folders that are already there (complete or not).
        base_url: a mirror that serves the archives by file name; default
            ``$SRLAB_DATASET_MIRROR``, else the official URLs.
        verify: check the known SHA-256 / MD5 of each archive (turn off only when the file
            on the server legitimately changed).
        keep_archives: keep fetched archives in ``<root>/downloads/`` after extraction.
        retries: further attempts after an interrupted transfer.
        backoff: pause before the first retry, in seconds (doubling after each).
        progress: progress bars (None: when stderr is a terminal).

    Returns:
        The HR folder of each set, in the order of ``specs``.

    Raises:
        DownloadError: a set that is not there has no public download (sets without one
            that were laid out by hand, and folders described in a config, are accepted as
            they are), a folder exists but is incomplete (and ``force`` is off), or an
            archive has an unsafe member or does not hold the expected images.
        NetworkError: an archive cannot be fetched; the message names every URL still
            needed, where to put each, and the layout to create by hand.
        ChecksumError: a fetched archive fails verification (it is removed).
        ConfigError: an unknown set name.
    """
    root = Path(root).expanduser().resolve()
    wanted = None if scales is None else tuple(sorted({int(s) for s in scales}))
    image_sets = [get_image_set(spec) for spec in specs]
    jobs = _plan(image_sets, root, wanted, force)
    by_archive: dict[str, list[_Job]] = {}
    for job in jobs:
        by_archive.setdefault(archive_url(job.archive, base_url), []).append(job)
    if by_archive:
        root.mkdir(parents=True, exist_ok=True)
    pending = dict(by_archive)  # what is still to fetch, for the no-network message
    for url, archive_jobs in by_archive.items():
        archive = archive_jobs[0].archive
        path, fetched = _obtain(archive, url, root, pending, verify, retries, backoff, progress)
        try:
            extract_archive(path, archive, [job.extract for job in archive_jobs], root)
        except ArchiveLayoutError:
            raise  # the archive itself is fine: keep it for extraction by hand
        except DownloadError:
            if fetched:  # a corrupt or unsafe archive must not be reused by the next run
                path.unlink(missing_ok=True)
                _remove_if_empty(path.parent)
            raise
        if fetched and not keep_archives:
            path.unlink(missing_ok=True)
        _remove_if_empty(root / DOWNLOADS_DIR)
        del pending[url]
    return [image_set.hr_path(root) for image_set in image_sets]


# -- planning --------------------------------------------------------------------------------


def _plan(
    image_sets: Sequence[ImageSet], root: Path, scales: tuple[int, ...] | None, force: bool
) -> list[_Job]:
    """The folders to create, after checking that every set can be downloaded."""
    jobs: list[_Job] = []
    incomplete: list[str] = []
    for image_set in image_sets:
        info = image_set.download
        if info is None or not info.archives:
            # Nothing srlab can fetch: fine when the set was laid out by hand (so every set of
            # a config can be passed here), else say how to lay it out.
            if _is_complete(image_set.hr_path(root), None):
                continue
            raise _manual_error(image_set, root)
        for archive, extract in info.extracts(scales):
            target = root / extract.target
            if not force and _is_complete(target, extract.count):
                log.info("%s: %s is complete, skipped", image_set.name, target)
                continue
            if not force and target.exists():
                found = count_images(target) if target.is_dir() else "not a folder"
                expected = extract.count if extract.count is not None else "some"
                incomplete.append(f"  {target}: {found} images, expected {expected}")
                continue
            if not any(job.extract == extract for job in jobs):  # a set listed twice
                jobs.append(_Job(image_set, archive, extract))
    if incomplete:
        # Never delete files a person put there without being asked to.
        raise DownloadError(
            "these folders exist but are incomplete:\n"
            + "\n".join(incomplete)
            + "\nRemove them, or run with force=True (--force) to replace them with the "
            "downloaded files."
        )
    return jobs


def _is_complete(folder: Path, count: int | None) -> bool:
    """Whether ``folder`` holds exactly ``count`` images (None: at least one)."""
    if not folder.is_dir():
        return False
    found = count_images(folder)
    return found > 0 if count is None else found == count


def _layout_lines(image_set: ImageSet, root: Path) -> str:
    """The set's expected layout, with the image count of each folder where it is known."""
    lines = [image_set.layout(root)]
    info = image_set.download
    if info is not None:
        counts = [
            f"  {root / extract.target}: {extract.count} images"
            for _, extract in info.extracts()
            if extract.count is not None
        ]
        if counts:
            lines.append("Expected image counts:")
            lines.extend(counts)
        elif info.images is not None:
            lines.append(f"Expected: {info.images} HR images")
    return "\n".join(lines)


def _manual_error(image_set: ImageSet, root: Path) -> DownloadError:
    """The error for a missing set srlab cannot fetch: where it comes from, the layout to make."""
    info = image_set.download
    if info is None:
        why = "is not a catalog set with a known download"
    else:
        why = f"has no public direct download ({info.note}); see {info.homepage}"
    return DownloadError(
        f"{image_set.name} {why}.\nCreate this layout by hand under data.root={root}:\n"
        f"{_layout_lines(image_set, root)}"
        + (f"\nHow to get it: {image_set.source}" if image_set.source else "")
    )


# -- fetching --------------------------------------------------------------------------------


def _obtain(
    archive: Archive,
    url: str,
    root: Path,
    pending: dict[str, list[_Job]],
    verify: bool,
    retries: int,
    backoff: float,
    progress: bool | None,
) -> tuple[Path, bool]:
    """The local archive file, fetched unless a verified copy is there; and whether fetched."""
    path = root / DOWNLOADS_DIR / archive.filename
    sha256 = archive.sha256 if verify else None
    md5 = archive.md5 if verify else None
    if path.is_file():
        if _matches(path, sha256, md5):
            log.info("using %s (already downloaded)", path)
            return path, False
        log.warning("%s does not match its checksum; downloading it again", path)
        path.unlink()
    size = f" ({archive.size / 2**20:,.0f} MiB)" if archive.size else ""
    log.info("downloading %s%s to %s", url, size, path)
    try:
        fetch(
            url,
            path,
            sha256=sha256,
            md5=md5,
            retries=retries,
            backoff=backoff,
            progress=progress,
        )
    except FetchError as exc:
        _remove_if_empty(path.parent)
        if isinstance(exc, ChecksumError):
            exc.hint = (
                f"Checksum from {archive.checksum_source}. Nothing was extracted. Run again to "
                "retry; if the file on the server changed legitimately, run with verify=False "
                "(--no-verify)"
            )
        elif isinstance(exc, WriteError):
            size = f" ({archive.size / 2**20:,.0f} MiB)" if archive.size else ""
            exc.hint = (
                f"Nothing was kept. Free space for the archive{size} and its images under "
                f"{root} (or point data.root elsewhere), and run again"
            )
        else:
            exc.hint = _by_hand(root, pending)
        raise
    return path, True


def _matches(path: Path, sha256: str | None, md5: str | None) -> bool:
    """Whether a local archive has the known checksum (True when none is known)."""
    if sha256 is not None:
        return file_digest(path, "sha256") == sha256
    return md5 is None or file_digest(path, "md5") == md5


def _by_hand(root: Path, pending: dict[str, list[_Job]]) -> str:
    """The hint when an archive cannot be fetched: every URL still needed, and the layout."""
    lines = [
        f"  {url}\n    -> {root / DOWNLOADS_DIR / jobs[0].archive.filename}"
        for url, jobs in pending.items()
    ]
    sets: dict[str, ImageSet] = {}
    for jobs in pending.values():
        for job in jobs:
            sets.setdefault(job.image_set.name, job.image_set)
    layouts = "\n".join(f"{s.name}:\n{_layout_lines(s, root)}" for s in sets.values())
    return (
        "\nWithout network access (or while the host is down), download these archives by "
        "hand (e.g. `curl -L -o <file> <url>`) to the paths shown and run again; they are then "
        "verified and extracted without network access:\n"
        + "\n".join(lines)
        + f"\nOr create the folders by hand under data.root={root}:\n{layouts}\n"
        f"A mirror that serves the archives by file name can be set with {MIRROR_ENV}=<url>."
    )


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it exists and is empty (so no empty ``downloads/`` is left)."""
    with contextlib.suppress(OSError):  # missing, or holds files (kept archives, another run)
        folder.rmdir()


# -- command line ----------------------------------------------------------------------------


def _describe_catalog(root: Path) -> str:
    """The catalog's downloadable sets: archives, checksums known, and what is present."""
    lines = []
    for key, image_set in CATALOG.items():
        info = image_set.download
        if info is None:
            continue
        missing = missing_folders(image_set, root)
        if not info.archives:
            laid_out = _is_complete(image_set.hr_path(root), None)
            status = "present (laid out by hand)" if laid_out else "no direct download"
        else:
            status = "complete" if not missing else f"{len(missing)} folder(s) missing"
        lines.append(f"{key:<20} {image_set.name:<20} {status}")
        for archive in info.archives:
            check = "sha256" if archive.sha256 else "md5" if archive.md5 else "no checksum"
            lines.append(f"    {archive.url} [{archive.format}, {check}]")
        if not info.archives:
            lines.append(f"    {info.homepage}: {info.note}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m srlab.data.download <name> [<name> ...] [--root DIR]``.

    Returns:
        The exit status: 0 on success, 1 when a set could not be downloaded (the reason is
        printed to stderr). Bad arguments exit with status 2 (argparse).
    """
    parser = argparse.ArgumentParser(
        prog="python -m srlab.data.download",
        description="Download, verify and lay out srlab's catalog datasets.",
    )
    parser.add_argument("names", nargs="*", help=f"catalog sets: {', '.join(CATALOG)}")
    parser.add_argument(
        "--root",
        default=os.environ.get("SRLAB_DATA_DIR", "data"),
        help="data root (data.root); default $SRLAB_DATA_DIR, else ./data",
    )
    parser.add_argument(
        "--scale",
        dest="scales",
        type=int,
        action="append",
        help="LR scale to fetch (repeat for several; default: every scale)",
    )
    parser.add_argument("--hr-only", action="store_true", help="fetch HR only (srlab makes LR)")
    parser.add_argument("--force", action="store_true", help="replace folders already there")
    parser.add_argument("--mirror", help=f"base URL serving the archives (default ${MIRROR_ENV})")
    parser.add_argument("--no-verify", action="store_true", help="skip checksum verification")
    parser.add_argument("--keep-archives", action="store_true", help="keep fetched archives")
    parser.add_argument("--list", action="store_true", help="list the downloadable sets")
    args = parser.parse_args(argv)
    root = Path(args.root).expanduser()
    if args.list:
        print(_describe_catalog(root))
        return 0
    if not args.names:
        parser.error("name at least one set (or --list)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        folders = download_sets(
            args.names,
            root,
            scales=() if args.hr_only else args.scales,
            force=args.force,
            base_url=args.mirror,
            verify=not args.no_verify,
            keep_archives=args.keep_archives,
        )
    except SRLabError as exc:  # a DownloadError, a FetchError, an unknown set name
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, folder in zip(args.names, folders, strict=True):
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What an image set is: a folder of HR images, LR folders per scale, how LR files are named,
and (for catalog sets) the archives it can be downloaded from.

:class:`ImageSet` is what every dataset reads; the known sets are its instances in
:mod:`srlab.data.catalog`, and a config may describe its own folder with the same fields.
:class:`DownloadInfo`, :class:`Archive` and :class:`Extract` describe where a catalog set's
files come from; :mod:`srlab.data.download` acts on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from srlab.errors import DatasetNotFoundError

__all__ = [
    "ARCHIVE_FORMATS",
    "SKIMAGE_DATA_DIR",
    "Archive",
    "DownloadInfo",
    "Extract",
    "ImageSet",
]

SKIMAGE_DATA_DIR = "<skimage>"
"""Placeholder root of the photos that scikit-image ships inside its package."""


ARCHIVE_FORMATS = ("zip", "tar", "tar.gz")
"""Archive formats that :mod:`srlab.data.archives` extracts."""


@dataclass(frozen=True)
class Extract:
    """Where the images of one folder inside an archive go under ``data.root``.

    Args:
        member_dir: the folder inside the archive, a glob on the member's folder
            (``DIV2K_train_HR``, ``benchmark/Set5/LR_bicubic/X2``); a leading ``**/`` also
            matches any leading folders (for archives whose top folder is not certain).
            Only image files directly in a matching folder are extracted; other files
            (``Thumbs.db``, scripts, macOS ``._*`` forks) are skipped.
        target: the destination folder, relative to ``data.root``.
        count: how many images ``target`` must hold (None: not known, only non-empty).
        scale: the LR scale this folder is for; None for HR (always extracted).
        rename: ``(regex, replacement)`` applied to each file name with ``re.sub``, when
            the archive names files differently from the catalog's ``lr_name``.
    """

    member_dir: str
    target: str
    count: int | None
    scale: int | None = None
    rename: tuple[str, str] | None = None


@dataclass(frozen=True)
class Archive:
    """One downloadable archive and what it provides.

    Args:
        url: the official (or documented mirror) URL; with a mirror
            (``SRLAB_DATASET_MIRROR`` or ``base_url``) the file name is appended to the mirror
            instead.
        format: ``zip``, ``tar`` or ``tar.gz``.
        extracts: the folders taken from it.
        sha256: the SHA-256 of the archive where it is really known, else None.
        md5: the MD5, where only that is published (checked when ``sha256`` is None too).
        size: the size in bytes where known (shown before a download).
        checksum_source: where the checksum comes from.
    """

    url: str
    format: str
    extracts: tuple[Extract, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    checksum_source: str = ""

    def __post_init__(self) -> None:
        if self.format not in ARCHIVE_FORMATS:
            raise ValueError(f"archive format {self.format!r} is not one of {ARCHIVE_FORMATS}")

    @property
    def filename(self) -> str:
        """The archive's file name (the last part of its URL)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DownloadInfo:
    """Where a catalog set comes from and how it is laid out once fetched.

    Args:
        homepage: the dataset's official page (or the page that documents the archive).
        archives: the archives to fetch; empty when there is no public direct download
            (the set is then laid out by hand, as ``note`` explains).
        images: the number of HR images of the set.
        note: licence, provenance, and anything not verified about the archives.
    """

    homepage: str
    archives: tuple[Archive, ...] = ()
    images: int | None = None
    note: str = ""

    def extracts(self, scales: tuple[int, ...] | None = None) -> list[tuple[Archive, Extract]]:
        """Every (archive, extract) pair, keeping HR and only the LR of ``scales`` (None: all)."""
        return [
            (archive, extract)
            for archive in self.archives
            for extract in archive.extracts
            if extract.scale is None or scales is None or extract.scale in scales
        ]


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
        download: the archives a catalog set is fetched from (:mod:`srlab.data.download`);
            None for sets that cannot be downloaded (folders described in a config).
    """

    name: str
    hr_dir: str
    lr_dir: str | None = None
    lr_name: str = "{stem}{ext}"
    files: tuple[str, ...] | None = None
    source: str = ""
    # Metadata, not identity: two sets with the same folders are the same set.
    download: DownloadInfo | None = field(default=None, compare=False, repr=False)

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
    """``folder`` against ``root``, or inside scikit-image's data folder for the sample sets."""
    if folder.startswith(SKIMAGE_DATA_DIR):
        import skimage.data

        base = Path(skimage.data.__file__).parent
        return base / folder[len(SKIMAGE_DATA_DIR) :].lstrip("/")
    path = Path(folder).expanduser()
    return path if path.is_absolute() else root / path

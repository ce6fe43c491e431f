"""Extracting dataset archives safely: every member checked before anything is written.

:func:`extract_archive` takes the wanted folders of a zip or tar (a catalog set's
:class:`~srlab.data.catalog.Extract` entries) into place under the data root:

1. every member of the archive is checked first: an absolute path, a path with ``..`` that
   leaves the folder, a link pointing outside or a device file refuses the whole archive;
2. only image files directly in a wanted folder are extracted (no ``Thumbs.db``, scripts or
   macOS ``._*`` forks), into a temporary folder inside the root, renamed as the catalog says;
3. before any byte is written, the sizes the members declare are checked: a member (or the
   whole archive) that would expand more than :data:`MAX_EXPANSION` times its compressed
   size is a decompression bomb and refuses the archive, and what would be extracted must
   fit in the free space of the data root; each member is then copied up to its declared
   size only, and a failed write (a full disk) is a :class:`DownloadError` too;
4. each folder's image count is checked against the catalog's;
5. each complete folder is moved into place with a rename, so a folder at its final path is
   always complete: an error at any step leaves no partial folder.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from srlab.data.sets import Archive, Extract
from srlab.errors import DataError
from srlab.imaging.io import is_image_file

__all__ = [
    "STAGING_PREFIX",
    "ArchiveLayoutError",
    "DownloadError",
    "count_images",
    "extract_archive",
]

log = logging.getLogger(__name__)

STAGING_PREFIX = ".srlab-extract-"
"""Name prefix of the temporary folders that extraction makes inside the data root."""

MAX_EXPANSION = 100
"""How many times its compressed size an archive member (and the archive's chosen members
together) may expand to. Image files are compressed already (PNG, JPEG) and expand by about
1x, an uncompressed BMP by a few times; a decompression bomb by hundreds to thousands."""

_SMALL = 1 << 20  # members up to this size may expand any amount (headers, tiny images)


class DownloadError(DataError):
    """A dataset could not be downloaded, verified or extracted; the message says how to fix."""


class ArchiveLayoutError(DownloadError):
    """A sound archive whose folders differ from the catalog's: it is kept for a manual fix."""


def count_images(folder: Path) -> int:
    """The image files directly in ``folder`` (what srlab's datasets would read)."""
    return sum(1 for path in folder.iterdir() if path.is_file() and is_image_file(path))


@dataclass(frozen=True)
class _Member:
    """An archive member reduced to what extraction needs."""

    name: str  # normalized posix path inside the archive
    kind: str  # "file", "dir" or "link"
    link_target: str | None  # normalized path inside the archive, for links
    size: int = 0  # the bytes it declares (files)
    packed: int | None = None  # its compressed bytes (zip members); None inside a tar


def extract_archive(path: Path, archive: Archive, extracts: list[Extract], root: Path) -> None:
    """Extract ``extracts`` of the archive at ``path`` and move them into place under ``root``.

    Raises:
        DownloadError: an unsafe member or an unreadable archive; nothing is left at the
            final paths and the temporary folder is removed.
        ArchiveLayoutError: the archive is sound but its folders do not hold the expected
            images (nothing is moved into place either).
    """
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        with _open_archive(path, archive) as (members, read):
            chosen = _map_members(members, extracts, path)
            sizes = _check_sizes(chosen, members, path, root)
            for (member, extract), name in chosen.items():
                dest = staging / extract.target / name
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with read(member) as src, dest.open("wb") as out:
                        _copy(src, out, sizes[member], member, path)
                except OSError as exc:
                    raise DownloadError(
                        f"cannot extract {path.name} into {root}: writing {dest.name} failed "
                        f"({exc.strerror or exc}); nothing was moved into place. Free space "
                        f"there (it needs {sum(sizes.values()) / 2**20:,.0f} MiB) or point "
                        "data.root elsewhere, and run again"
                    ) from exc
        for extract in extracts:
            found = (
                count_images(staging / extract.target) if (staging / extract.target).is_dir() else 0
            )
            if (extract.count is not None and found != extract.count) or found == 0:
                tops = sorted({m.name.split("/", 1)[0] for m in members})[:10]
                raise ArchiveLayoutError(
                    f"{path}: the archive folder matching {extract.member_dir!r} holds {found} "
                    f"images, expected {extract.count or 'some'} for {root / extract.target}. "
                    f"The archive is not laid out as srlab's catalog expects (its top-level "
                    f"entries: {tops}); nothing was moved into place. The archive is kept: "
                    f"extract those images into {root / extract.target} by hand, or correct "
                    "the set's entry in srlab/data/catalog.py."
                )
        for extract in extracts:
            _move_into_place(staging / extract.target, root / extract.target, staging)
            log.info("%s: %s ready", path.name, root / extract.target)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
        raise DownloadError(
            f"{path} is not a readable {archive.format} archive ({exc}); it was probably cut "
            "or corrupted in transfer (no checksum is known for it): run again to download it "
            "afresh"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_sizes(
    chosen: dict[tuple[_Member, Extract], str], members: list[_Member], archive: Path, root: Path
) -> dict[_Member, int]:
    """The declared size of every chosen member (a link: its target's), after refusing a
    decompression bomb and an extraction that cannot fit in ``root``'s free space."""
    by_name = {member.name: member for member in members}
    sizes: dict[_Member, int] = {}
    for member, _ in chosen:
        data = by_name.get(member.link_target, member) if member.kind == "link" else member
        if data.packed is not None and data.size > max(_SMALL, MAX_EXPANSION * data.packed):
            raise DownloadError(
                f"refusing to extract {archive}: member {data.name!r} would expand from "
                f"{data.packed:,} to {data.size:,} bytes ({data.size // max(1, data.packed):,}x; "
                f"images expand at most {MAX_EXPANSION}x). The archive is malformed or a "
                "decompression bomb; nothing was extracted."
            )
        sizes[member] = data.size
    total = sum(sizes.values())
    packed = archive.stat().st_size
    if total > max(_SMALL, MAX_EXPANSION * packed):
        raise DownloadError(
            f"refusing to extract {archive}: its members declare {total:,} bytes, "
            f"{total // max(1, packed):,}x the archive's {packed:,} (images expand at most "
            f"{MAX_EXPANSION}x). The archive is malformed or a decompression bomb; nothing was "
            "extracted."
        )
    free = shutil.disk_usage(root).free
    if total > free:
        raise DownloadError(
            f"cannot extract {archive.name} into {root}: it needs {total / 2**20:,.0f} MiB and "
            f"{free / 2**20:,.0f} MiB are free there; nothing was extracted. Free space or point "
            "data.root elsewhere, and run again"
        )
    return sizes


def _copy(src: IO[bytes], out: IO[bytes], size: int, member: _Member, archive: Path) -> None:
    """Copy a member's bytes, refusing one that holds more than it declared."""
    left = size
    while chunk := src.read(min(1 << 20, left + 1)):
        left -= len(chunk)
        if left < 0:
            raise DownloadError(
                f"refusing to extract {archive}: member {member.name!r} holds more than the "
                f"{size:,} bytes it declares; nothing was moved into place."
            )
        out.write(chunk)


@contextlib.contextmanager
def _open_archive(
    path: Path, archive: Archive
) -> Iterator[tuple[list[_Member], Callable[[_Member], IO[bytes]]]]:
    """Open a zip or tar; yield its members (checked safe) and a ``read(member)`` function."""
    if archive.format == "zip":
        with zipfile.ZipFile(path) as zf:
            infos = {}
            members = []
            for info in zf.infolist():
                member = _zip_member(info, zf, path)
                infos[member.name] = info
                members.append(member)

            def read_zip(member: _Member) -> IO[bytes]:
                name = member.link_target if member.kind == "link" else member.name
                if name not in infos:
                    raise DownloadError(
                        f"{path.name}: link {member.name!r} points to a missing member"
                    )
                return zf.open(infos[name])

            yield members, read_zip
    else:
        with tarfile.open(path, mode="r:*") as tf:
            infos = {}
            members = []
            for info in tf.getmembers():
                member = _tar_member(info, path)
                infos[member.name] = info
                members.append(member)

            def read_tar(member: _Member) -> IO[bytes]:
                # extractfile follows links to their (already checked) target inside the tar.
                handle = tf.extractfile(infos[member.name])
                if handle is None:
                    raise DownloadError(f"{path.name}: cannot read member {member.name!r}")
                return handle

            yield members, read_tar


def _safe_name(name: str, archive: Path, what: str = "member") -> str:
    """``name`` normalized to a relative posix path; refuse one that is absolute or escapes."""
    # Backslashes count as separators: zips made on Windows sometimes use them.
    candidate = name.replace("\\", "/")
    if candidate.startswith("/") or re.match(r"^[A-Za-z]:", candidate):
        raise DownloadError(
            f"refusing to extract {archive}: {what} {name!r} has an absolute path. The archive "
            "is malformed or malicious; nothing was extracted."
        )
    normalized = posixpath.normpath(candidate)
    if normalized == ".." or normalized.startswith("../"):
        raise DownloadError(
            f"refusing to extract {archive}: {what} {name!r} leaves the target folder. The "
            "archive is malformed or malicious; nothing was extracted."
        )
    return normalized


def _link_target(name: str, target: str, archive: Path) -> str:
    """A symlink's target as a path inside the archive; refuse one that points outside it."""
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise DownloadError(
            f"refusing to extract {archive}: link {name!r} points to the absolute path "
            f"{target!r}; nothing was extracted."
        )
    joined = posixpath.join(posixpath.dirname(name), target)
    return _safe_name(joined, archive, f"link {name!r} -> {target!r}, resolved")


def _zip_member(info: zipfile.ZipInfo, zf: zipfile.ZipFile, archive: Path) -> _Member:
    """A zip entry as a checked :class:`_Member` (zips store a symlink's target as its data)."""
    name = _safe_name(info.filename, archive)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):  # a symlink: its target is the member's content
        target = zf.read(info).decode("utf-8", "replace")
        return _Member(name, "link", _link_target(name, target, archive))
    kind = "dir" if info.is_dir() else "file"
    return _Member(name, kind, None, info.file_size, info.compress_size)


def _tar_member(info: tarfile.TarInfo, archive: Path) -> _Member:
    """A tar entry as a checked :class:`_Member`; devices and fifos are refused."""
    name = _safe_name(info.name, archive)
    if info.issym():
        return _Member(name, "link", _link_target(name, info.linkname, archive))
    if info.islnk():  # hard links name their target from the archive root
        return _Member(name, "link", _safe_name(info.linkname, archive, f"link {name!r} target"))
    if info.isdir():
        return _Member(name, "dir", None)
    if info.isfile():
        return _Member(name, "file", None, info.size)
    raise DownloadError(
        f"refusing to extract {archive}: member {info.name!r} is a device or fifo, not a "
        "file; nothing was extracted."
    )


def _folder_matches(folder: str, pattern: str) -> bool:
    """Whether an archive folder matches an :class:`Extract`'s ``member_dir`` glob."""
    if pattern.startswith("**/"):
        rest = pattern[3:]
        return fnmatch.fnmatchcase(folder, rest) or fnmatch.fnmatchcase(folder, "*/" + rest)
    return fnmatch.fnmatchcase(folder, pattern)


def _map_members(
    members: list[_Member], extracts: list[Extract], archive: Path
) -> dict[tuple[_Member, Extract], str]:
    """Which member goes to which folder under which file name."""
    chosen: dict[tuple[_Member, Extract], str] = {}
    seen: dict[str, str] = {}
    for member in members:
        if member.kind == "dir":
            continue
        folder, _, filename = member.name.rpartition("/")
        # macOS adds __MACOSX/ folders and ._name resource forks to zips; they are not images.
        if folder.startswith("__MACOSX") or filename.startswith("._"):
            continue
        if not is_image_file(Path(filename)):
            continue
        for extract in extracts:
            if not _folder_matches(folder, extract.member_dir):
                continue
            name = filename
            if extract.rename is not None:
                name = re.sub(extract.rename[0], extract.rename[1], filename)
            if "/" in name or name in ("", ".", ".."):
                raise DownloadError(f"{archive.name}: renaming {filename!r} gave {name!r}")
            dest = f"{extract.target}/{name}"
            if dest in seen:
                raise DownloadError(
                    f"{archive.name}: members {seen[dest]!r} and {member.name!r} both map to "
                    f"{dest}; the catalog's folder pattern {extract.member_dir!r} is ambiguous"
                )
            seen[dest] = member.name
            chosen[(member, extract)] = name
    return chosen


def _move_into_place(source: Path, final: Path, staging: Path) -> None:
    """Rename a complete folder onto its final path, replacing an old one (``force``)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        # Move the old folder into the staging area first: a rename cannot replace a
        # non-empty folder, and the staging area is deleted at the end anyway.
        os.rename(final, Path(tempfile.mkdtemp(dir=staging)) / "old")
    os.rename(source, final)

"""The decoded-image cache: each training image decoded once into a memory-mapped ``.npy`` file.

Decoding a 2K PNG takes ~150 ms on one core, and a random 48 px patch needs a few rows of it;
decoding per sample makes the loader, not the network, the bottleneck. Here every image is
decoded once into a uint8 ``.npy`` file and memory-mapped, so a crop reads only the pages it
covers (and the OS page cache shares them between loader workers).

Entries are named by a hash of the source file's path, size and modification time (and what
was made from it), so a changed file gets a new entry. Every entry is written to a temporary
name and renamed into place: an interrupted build, or two processes making the same entry,
never leave a half-written file. :meth:`DecodedCache.build` fills many entries in parallel
under a file lock, so one process per node builds while the others wait.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from filelock import FileLock, Timeout

from srlab.data.parallel import run_parallel
from srlab.files import atomic_write, remove_dead_partials

log = logging.getLogger(__name__)

T = TypeVar("T")

# Part of every entry's key: bump it when what is stored for a source changes (e.g. how
# read_image converts modes), so old entries are not served. 2: 16-bit colour sources are
# round(v / 257) of all 16 bits (srlab.imaging.io), no longer Pillow's high byte.
FORMAT_VERSION = 2


def source_key(path: Path, *extra: object) -> str:
    """A 16-hex-digit key of ``path``'s resolved path, size and modification time (and
    ``extra``): what is made from a file is re-made when the file changes."""
    stat = path.stat()
    text = "|".join(str(part) for part in (path.resolve(), stat.st_size, stat.st_mtime_ns, *extra))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class DecodedCache:
    """uint8 arrays made from image files, kept as ``.npy`` files in ``folder``.

    :meth:`get` returns an entry memory-mapped (a read-only view), making it first if it is
    missing; :meth:`build` makes many in parallel. A folder that cannot be written only costs
    the decoding: arrays are then returned from memory, with one warning.

    Args:
        folder: where the entries live (``<data.cache_dir>/decoded``); shared by runs and by
            the processes of a run.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.made = 0  # entries written by this object (build reports its share)
        self._count_lock = threading.Lock()
        self._warned = False

    def __getstate__(self) -> dict:
        # Loader workers get a copy; a threading.Lock does not pickle.
        return {"folder": self.folder, "made": self.made, "_warned": self._warned}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._count_lock = threading.Lock()

    def entry(self, source: Path, variant: str = "image") -> Path:
        """The file that holds ``variant`` of ``source`` (e.g. ``image``, ``bicubic-x2``)."""
        key = source_key(source, variant, FORMAT_VERSION)
        return self.folder / f"{source.stem}-{variant}-{key}.npy"

    def get(
        self, source: Path, produce: Callable[[], np.ndarray], variant: str = "image"
    ) -> np.ndarray:
        """``variant`` of ``source``, memory-mapped from its entry; ``produce()`` makes it
        (and it is stored) when the entry is missing or unreadable."""
        path = self.entry(source, variant)
        try:
            return open_entry(path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, RuntimeError) as error:
            # Only a crash of the machine mid-write or a foreign file can get here.
            log.warning("decoded cache entry %s is unreadable (%s): making it again", path, error)
        array = produce()
        if not self._write(path, array):
            return array
        with self._count_lock:
            self.made += 1
        return open_entry(path)

    def build(
        self, items: Sequence[T], fill: Callable[[T], object], workers: int, what: str = "images"
    ) -> int:
        """Call ``fill(item)``, which reads its arrays through :meth:`get`, for every item.

        Runs ``workers`` threads (decoding and file writes release the GIL) with a progress
        bar, holding ``<folder>/.build.lock``: another process building the same folder waits,
        then finds the entries made. Temporary files left by killed builds are removed.

        Returns:
            How many entries this call made (0 when every one was there).
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            log.warning(
                "cannot create the decoded cache %s (%s): decoding per sample", self.folder, error
            )
            return 0
        lock = FileLock(self.folder / ".build.lock")
        try:
            lock.acquire(timeout=1)
        except Timeout:
            log.info("waiting for another process that builds the decoded cache %s", self.folder)
            lock.acquire()
        try:
            self._remove_dead_temps()
            before = self.made
            run_parallel(items, fill, workers, f"decoding {what}")
            made = self.made - before
        finally:
            lock.release()
        log.info("decoded cache %s: %d arrays made for %d %s", self.folder, made, len(items), what)
        return made

    def _write(self, path: Path, array: np.ndarray) -> bool:
        try:
            with atomic_write(path) as partial, open(partial, "wb") as file:
                np.save(file, array)
            return True
        except OSError as error:
            if not self._warned:
                self._warned = True
                log.warning(
                    "cannot write the decoded cache %s (%s): images are decoded per sample. "
                    "Free space there or point data.cache_dir elsewhere (data.cache=false "
                    "turns the cache off).",
                    self.folder,
                    error,
                )
            return False

    def _remove_dead_temps(self) -> None:
        # Only this host's files of processes that are gone: others may still be writing.
        remove_dead_partials(self.folder)

    def __repr__(self) -> str:
        return f"DecodedCache({str(self.folder)!r})"


# numpy parses a .npy header with ast.literal_eval, and CPython 3.11's parser is not safe in
# concurrent threads ("SystemError: AST constructor recursion depth mismatch", CPython
# gh-106905): the pre-flight check opens entries from a thread pool, so headers are read one
# at a time (a few microseconds each).
_HEADER_LOCK = threading.Lock()


def open_entry(path: Path) -> np.ndarray:
    """The uint8 array of the ``.npy`` file ``path``, memory-mapped, as a read-only view.

    Mapped by torch, which closes the file once mapped: ``np.load(mmap_mode="r")`` keeps a
    descriptor open per map, and a loader worker that keeps DIV2K's 1600 HR and LR maps open
    would pass the usual limit of 1024 open files.

    Raises:
        ValueError: not a C-ordered uint8 ``.npy`` file; RuntimeError: shorter than its header
            says (written by something else than :class:`DecodedCache`).
    """
    with open(path, "rb") as file, _HEADER_LOCK:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        offset = file.tell()
    if dtype != np.uint8 or fortran_order:
        raise ValueError(f"{path} holds {dtype} (Fortran order: {fortran_order}), not uint8")
    size = offset + int(np.prod(shape))
    data = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)
    array = data.numpy()[offset:].reshape(shape)
    array.flags.writeable = False
    return array

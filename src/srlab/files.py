"""Writing files so that no reader ever sees half of one, and cleaning up after killed writers.

Every file srlab writes for later (checkpoints, decoded-cache entries, images, ``run.json``) is
written to a *partial* file beside it, ``.<name>.<host>.<pid>.<thread>.part``, and renamed into
place: a rename within one folder is atomic, so a process killed mid-write (SIGKILL, the OOM
killer, pre-emption) leaves the previous file intact, never a truncated one. The partial name
is unique per host, process and thread, so concurrent writers never share one; a partial file
that a killed process left behind is removed by :func:`remove_dead_partials`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

#: This host's name in partial-file names (dots would split the name's fields).
HOST = socket.gethostname().replace(".", "-")
_SUFFIX = ".part"


def partial_path(path: Path) -> Path:
    """The partial file ``path`` is written to before it is renamed into place."""
    return path.with_name(f".{path.name}.{HOST}.{os.getpid()}.{threading.get_ident()}{_SUFFIX}")


@contextlib.contextmanager
def atomic_write(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """Write ``path`` all at once: the block writes the yielded partial path, which is renamed
    onto ``path`` when the block succeeds and removed when it fails.

    Args:
        path: the file to (re)place; its folder is made.
        fsync: flush the partial file to the disk before the rename, so that a machine crash
            right after it cannot leave an empty file under the final name (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
        if fsync:
            with open(partial, "rb+") as file:
                os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_partials(folder: str | Path, name: str = "*") -> int:
    """Delete the partial files in ``folder`` (of files named ``name``, a glob) that dead
    processes of this host left; those of live processes and of other hosts (a shared file
    system) are kept. Returns how many were removed."""
    removed = 0
    for partial in Path(folder).glob(f".{name}.*{_SUFFIX}"):
        fields = partial.name[: -len(_SUFFIX)].rsplit(".", 3)  # [".<name>", host, pid, thread]
        if len(fields) != 4 or fields[1] != HOST or not fields[2].isdigit():
            continue
        if not pid_alive(int(fields[2])):
            partial.unlink(missing_ok=True)
            removed += 1
    return removed


#: The lock file of a folder that one process at a time may write (:func:`exclusive_folder`).
LOCK_FILE = ".srlab.lock"


class FolderInUseError(Exception):
    """Another live process holds the folder's lock; ``owner`` says which, when it is known."""

    def __init__(self, folder: Path, owner: str) -> None:
        super().__init__(f"{folder} is in use by {owner}")
        self.folder, self.owner = folder, owner


@contextlib.contextmanager
def exclusive_folder(folder: str | Path) -> Iterator[Path]:
    """Hold ``<folder>/.srlab.lock`` while the block runs, so that no other process (of this
    host, or of another one on a file system with working locks) writes the folder meanwhile.

    The lock is the operating system's (``flock``), so it ends with its process: a run killed
    with SIGKILL leaves no stale lock behind. The file itself stays and names its last owner
    (``<host> pid <pid>``), which the error of a second process quotes.

    Raises:
        FolderInUseError: another process holds the lock.
    """
    import fcntl  # POSIX: srlab's runs are Linux and macOS processes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    with open(path, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            owner = file.read().strip() or "another process"
            raise FolderInUseError(folder, owner) from None
        try:
            file.seek(0)
            file.truncate()
            file.write(f"{HOST} pid {os.getpid()}\n")
            file.flush()
            yield folder
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)

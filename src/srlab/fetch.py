"""Fetching one file over HTTP(S): a ``.part`` file renamed when complete, verified, retried.

:func:`fetch` is srlab's one download routine: pretrained weights
(:func:`srlab.weights.download_weights`) and dataset archives
(:func:`srlab.data.download.download_sets`) both use it, and a failure is always a
:class:`FetchError` (:class:`NetworkError`, :class:`ChecksumError` or, when the disk refuses
the bytes, :class:`WriteError`), whichever asked for the file. The caller adds its advice
(where to put a copy downloaded by hand) as the error's ``hint`` and re-raises it.

What it guarantees:

- The destination path only ever holds a complete, verified file: bytes go to
  ``<dest>.<pid>.part`` and are renamed onto ``dest`` at the end. The pid keeps two
  processes (DDP ranks) that download the same file from writing into one ``.part``.
- A transfer that breaks after it started (connection reset, timeout, a body shorter than
  its ``Content-Length``, a 5xx answer) deletes its ``.part`` and starts again from byte 0,
  up to ``retries`` more times with a doubling pause. A host that cannot be reached at all
  (refused connection, unknown name) fails at once: without a network, retrying only delays
  the message that says what to download by hand.
- A known SHA-256 (or, where only that is published, MD5) is checked on the bytes as they
  arrive; a mismatch deletes the file, raises :class:`ChecksumError` and is not retried.
- A write that fails (a full disk) deletes the ``.part``, raises :class:`WriteError` naming
  the folder and its free space, and is not retried: the network was not at fault.

Why the standard library's ``urllib`` and not a download library: ``torch.hub``'s
``download_url_to_file`` (installed with torch) sets no timeout, so a stalled server hangs
the run; it accepts a body cut short of its ``Content-Length`` when no hash is known (most
dataset archives publish none, or only an MD5), checks a SHA-256 prefix only and retries
nothing. ``pooch`` (on ``requests``) retries every failure, checksum mismatches included,
with fixed pauses of 1 to 10 s, checks one hash per file, and would be one more dependency.
Wrapping either to get the guarantees above takes more code than the one transfer loop
below; ``urllib`` is maintained with Python itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from srlab.errors import SRLabError

__all__ = [
    "ChecksumError",
    "FetchError",
    "NetworkError",
    "WriteError",
    "fetch",
    "file_digest",
    "normalize_digest",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# HTTP answers worth another try: the server is busy or failed, not the request.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_HEX_LENGTH = {"sha256": 64, "md5": 32}


class FetchError(SRLabError):
    """A URL could not be downloaded: the base of every download failure, weights or data.

    Attributes:
        url: The URL.
        reason: What went wrong, in words.
        hint: Advice that the caller added (where to put a copy downloaded by hand, which
            option to change), or ``""``. It ends the message, after the reason and a full
            stop; on a line of its own when it starts with a newline.
    """

    def __init__(self, url: str, reason: str, hint: str = "") -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        message = f"could not download {self.url}: {self.reason}"
        if not self.hint:
            return message
        return f"{message}.{'' if self.hint[:1].isspace() else ' '}{self.hint}"


class NetworkError(FetchError):
    """The host cannot be reached, answered with an HTTP error, or every attempt broke off."""


class ChecksumError(FetchError):
    """A download completed but its checksum differs from the expected one.

    Attributes:
        algorithm: ``"sha256"`` or ``"md5"``.
        expected: The expected hex digest.
        actual: The digest of the bytes received.
    """

    def __init__(self, url: str, algorithm: str, expected: str, actual: str) -> None:
        super().__init__(
            url,
            f"{algorithm} mismatch: expected {expected}, got {actual}; the downloaded file was "
            "removed (the file on the server changed or was corrupted in transfer)",
        )
        self.args = (url, algorithm, expected, actual)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class WriteError(FetchError):
    """The bytes arrived but could not be written (a full disk, a quota, permissions); not
    retried, and no ``.part`` file is left."""


class _Interrupted(Exception):
    """A transfer that broke after it started, or a transient server error: worth a retry."""


def normalize_digest(value: str | None, algorithm: str = "sha256") -> str | None:
    """``value`` as lower-case hex, or None when None.

    Raises:
        ValueError: ``value`` is not a hex digest of ``algorithm``'s length.
    """
    if value is None:
        return None
    digest = value.strip().lower()
    if not re.fullmatch(rf"[0-9a-f]{{{_HEX_LENGTH[algorithm]}}}", digest):
        raise ValueError(
            f"{algorithm} must be {_HEX_LENGTH[algorithm]} hexadecimal digits, got {value!r}"
        )
    return digest


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in 1 MiB chunks (so a multi-GB archive fits in memory)."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    retries: int = 2,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool | None = None,
    label: str | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through a ``.part`` file; verify it; return ``dest``.

    ``dest`` is overwritten when the new file is complete and verified; until then an
    existing ``dest`` is untouched.

    Args:
        url: An ``http://`` or ``https://`` URL.
        dest: The file to create (its folder is created when missing).
        sha256: Expected SHA-256 (hex, any case), or None.
        md5: Expected MD5 (hex), or None; checked too when given (some datasets publish
            only MD5, which still catches corruption).
        retries: Further attempts after an interrupted transfer or a transient HTTP error.
        backoff: Pause before the first retry in seconds; it doubles for each next one.
        timeout: Socket timeout in seconds (connecting, and each read).
        progress: Show a progress bar with bytes and speed; None shows it when stderr is a
            terminal (logs and CI output stay clean).
        label: Text in front of the bar (default: the file name).

    Returns:
        ``dest`` as a Path.

    Raises:
        NetworkError: The URL cannot be reached or answered with an error, or every attempt
            was interrupted; no ``.part`` file is left.
        FetchError: ``url`` is not an http(s) URL.
        ChecksumError: The bytes do not match ``sha256`` / ``md5``; nothing is left.
        ValueError: A checksum is not a hex digest.
    """
    dest = Path(dest)
    expected = {
        name: value
        for name, value in (
            ("sha256", normalize_digest(sha256, "sha256")),
            ("md5", normalize_digest(md5, "md5")),
        )
        if value is not None
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    show = sys.stderr.isatty() if progress is None else progress
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            actual = _transfer(url, part, tuple(expected), timeout, show, label or dest.name)
            break
        except _Interrupted as exc:
            part.unlink(missing_ok=True)
            if attempt == attempts:
                raise NetworkError(
                    url, f"{exc} ({attempts} attempt{'s' if attempts > 1 else ''})"
                ) from exc
            delay = backoff * 2 ** (attempt - 1)
            log.warning(
                "download of %s interrupted (%s); retrying from the start in %.1f s (%d/%d)",
                url,
                exc,
                delay,
                attempt,
                retries,
            )
            time.sleep(delay)
        except BaseException:
            # Permanent errors, and Ctrl-C: a .part must never outlive its transfer.
            part.unlink(missing_ok=True)
            raise
    for name, value in expected.items():
        if actual[name] != value:
            part.unlink(missing_ok=True)
            raise ChecksumError(url, name, value, actual[name])
    os.replace(part, dest)
    return dest


def _transfer(
    url: str, part: Path, algorithms: tuple[str, ...], timeout: float, show: bool, label: str
) -> dict[str, str]:
    """One attempt: stream ``url`` into ``part``; return the hex digests of the bytes.

    Raises:
        _Interrupted: a retryable failure.
        NetworkError: a permanent one.
    """
    digests = {name: hashlib.new(name) for name in algorithms}
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in _RETRY_STATUS:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise NetworkError(url, f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        # The connection was attempted and failed. A timeout may pass; a refused connection
        # or an unknown host name means no network (or a wrong URL): fail at once.
        if isinstance(exc.reason, TimeoutError | ConnectionResetError | ConnectionAbortedError):
            raise _Interrupted(str(exc.reason)) from exc
        raise NetworkError(url, str(exc.reason)) from exc
    except TimeoutError as exc:
        raise _Interrupted(f"timed out after {timeout:g} s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:  # not an http(s) URL at all
        raise FetchError(url, str(exc)) from exc

    with response:
        header = response.headers.get("Content-Length")
        total = int(header) if header and header.isdigit() else None
        received = 0
        with _writing(url, part) as f, _progress(show, label, total) as advance:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                # A connection cut mid-body raises a reset, a timeout (OSErrors) or
                # IncompleteRead.
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(f"{type(exc).__name__}: {exc}") from exc
                if not chunk:
                    break
                f.write(chunk)
                for digest in digests.values():
                    digest.update(chunk)
                received += len(chunk)
                advance(len(chunk))
    # http.client returns b"" rather than raising when the server closes the connection
    # before Content-Length bytes arrived, so a short body has to be caught here.
    if total is not None and received != total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")
    return {name: digest.hexdigest() for name, digest in digests.items()}


@contextlib.contextmanager
def _writing(url: str, part: Path) -> Iterator[IO[bytes]]:
    """``part`` open for writing; a failure to write it (not the network's) is a
    :class:`WriteError` that names the folder and its free space."""
    try:
        with part.open("wb") as f:
            yield f
    except OSError as exc:
        try:
            free = f"{shutil.disk_usage(part.parent).free / 2**20:,.0f} MiB free"
        except OSError:
            free = "free space unknown"
        raise WriteError(
            url, f"cannot write {part} ({exc.strerror or exc}; {free} in {part.parent})"
        ) from exc


@contextlib.contextmanager
def _progress(show: bool, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar (bytes, speed, time left) while the body streams, or a no-op."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)

"""Weights by URL: downloaded once into srlab's cache, then used from there without a network.

The transfer is :func:`srlab.fetch.fetch` (a ``.part`` file renamed when complete and
verified, interrupted transfers retried), shared with the dataset downloads. The cache is
srlab's own rather than ``torch.hub``'s (``$TORCH_HOME/hub/checkpoints``): that one keeps
files by name only, so two releases that both call their file ``model_best.pth`` overwrite
each other, while here each URL has its own folder (a hash of the URL) and the file keeps its
name inside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import urllib.parse
from pathlib import Path

from srlab import zoo
from srlab.fetch import ChecksumError, FetchError, fetch, file_digest, normalize_digest
from srlab.weights.registry import PretrainedError

__all__ = ["cache_path", "default_cache_dir", "download_weights", "is_url", "resolve_source"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where downloaded weights are kept: ``$SRLAB_CACHE_DIR``, else ``~/.cache/srlab/weights``."""
    env = os.environ.get("SRLAB_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srlab" / "weights"


def is_url(source: str | Path) -> bool:
    """Whether ``source`` is an ``http(s)://`` URL (a :class:`~pathlib.Path` never is).

    >>> is_url("https://example.org/w.pth"), is_url("w.pth")
    (True, False)
    """
    return isinstance(source, str) and urllib.parse.urlsplit(source).scheme in ("http", "https")


def cache_path(url: str, cache_dir: str | Path | None = None) -> Path:
    """The file that caches ``url``: ``<cache_dir>/<16 hex digits of its hash>/<its file name>``.

    Args:
        url: The URL.
        cache_dir: Cache folder; default :func:`default_cache_dir`.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or "weights.pth"
    return root / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def _normalize_sha256(sha256: str | None) -> str | None:
    try:
        return normalize_digest(sha256, "sha256")
    except ValueError as exc:
        raise PretrainedError(str(exc)) from exc


def _remove_empty_folder(folder: Path) -> None:
    """Remove a download's per-URL folder when a failure left it empty."""
    with contextlib.suppress(OSError):  # not empty: another file or download lives there
        folder.rmdir()


def download_weights(
    url: str, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Download ``url`` once into the cache and return the cached file.

    A file already in the cache is reused without any network access (re-verified when
    ``sha256`` is given). An interrupted download never looks like a finished one, and two
    processes (DDP ranks) downloading at once never read each other's partial file
    (:func:`srlab.fetch.fetch`).

    Args:
        url: An ``http://`` or ``https://`` URL.
        sha256: Expected SHA-256 of the file (hex), or ``None`` to skip verification.
        cache_dir: Cache folder; default :func:`default_cache_dir`.

    Returns:
        Path of the cached file.

    Raises:
        NetworkError: If the download fails; the message says where to put a copy
            downloaded by hand.
        ChecksumError: If the hash does not match (the downloaded file is removed).
        PretrainedError: If ``sha256`` is not a SHA-256 hex digest.
    """
    expected = _normalize_sha256(sha256)
    path = cache_path(url, cache_dir)
    if path.is_file():
        if expected is None or file_digest(path) == expected:
            return path
        log.warning("cached %s does not match its sha256; downloading it again", path)
        path.unlink()
    log.info("downloading %s to %s", url, path)
    try:
        return fetch(url, path, sha256=expected)
    except FetchError as exc:
        _remove_empty_folder(path.parent)
        exc.hint = (
            "Check the URL and the hash"
            if isinstance(exc, ChecksumError)
            else f"Without network access, download it by hand to {path} (e.g. `curl -L -o "
            f"{path} {url}`) or pass a local path as the source"
        )
        raise


def resolve_source(
    source: str | Path, sha256: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The local file for ``source``: a URL is downloaded (once), a path is checked to exist,
    ``zoo:<name>`` is the weights file of that entry of srlab's model zoo (:mod:`srlab.zoo`).

    Args:
        source: Local path, ``http(s)://`` URL or ``zoo:<name>``.
        sha256: Expected SHA-256 of the file, verified for local files too.
        cache_dir: Cache folder for URLs; default :func:`default_cache_dir`.

    Returns:
        Path of a readable local file.

    Raises:
        PretrainedError: If the file is missing or fails verification.
        FetchError: If a URL cannot be downloaded or fails verification
            (:func:`download_weights`).
    """
    source = zoo.resolve(source)
    if is_url(source):
        return download_weights(str(source), sha256=sha256, cache_dir=cache_dir)
    path = Path(source).expanduser()
    if not path.is_file():
        raise PretrainedError(
            f"pretrained weights not found: {path} (a file path or an http(s) URL)"
        )
    expected = _normalize_sha256(sha256)
    if expected is not None and (actual := file_digest(path)) != expected:
        raise PretrainedError(f"sha256 mismatch for {path}: expected {expected}, got {actual}")
    return path

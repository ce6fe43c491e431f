"""A full disk and oversized archives: one line that says what was lost and what to free.

A full disk is simulated with the file-size limit (``RLIMIT_FSIZE``): writes past it fail
with ``EFBIG`` through the same code paths as ``ENOSPC``, and only for the files written
while the limit is set.
"""

from __future__ import annotations

import contextlib
import errno
import io
import resource
import signal
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from helpers import compose_config
from PIL import Image

from srlab.app.train import train
from srlab.data.archives import DownloadError, extract_archive
from srlab.data.sets import Archive, Extract
from srlab.errors import SRLabError
from srlab.runtime.checkpoints import AtomicCheckpointIO


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes of any file fail (EFBIG), as on a disk that is full."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write, not the process
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


# -- checkpoints -----------------------------------------------------------------------------


def test_a_checkpoint_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    io_ = AtomicCheckpointIO()
    io_.save_checkpoint(
        {"global_step": 2, "state_dict": {"w": torch.ones(10)}}, tmp_path / "a.ckpt"
    )
    with file_size_limit(50_000), pytest.raises(SRLabError) as info:
        io_.save_checkpoint({"global_step": 3, "state_dict": {"w": torch.ones(100_000)}}, tmp_path / "last.ckpt")  # fmt: skip
    message = str(info.value)
    assert "\n" not in message and f"into {tmp_path} (File too large" in message
    assert f"newest checkpoint that was written are lost; that checkpoint is {tmp_path / 'a.ckpt'} (step 2)" in message  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt"]  # no partial file left


def test_training_on_a_full_disk_stops_with_one_line(tmp_path: Path, monkeypatch) -> None:
    write = AtomicCheckpointIO.save_checkpoint

    def disk_full_from_step_3(self, checkpoint, path, storage_options=None):
        limit = 10_000 if checkpoint["global_step"] >= 3 else resource.RLIM_INFINITY
        with file_size_limit(limit):
            write(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", disk_full_from_step_3)
    cfg = compose_config(
        tmp_path,
        ["debug=fast", "logger=csv", "test=false", "trainer.max_steps=6",
         "callbacks.periodic_checkpoint.every_n_train_steps=1",
         "callbacks.periodic_checkpoint.save_top_k=-1"],
    )  # fmt: skip
    with pytest.raises(SRLabError) as info:
        train(cfg)
    message = str(info.value)
    folder = tmp_path / "checkpoints"
    assert "\n" not in message and f"into {folder} (File too large" in message, message
    assert "training stopped at step 3" in message and "(step 2)" in message
    assert "resume with ckpt_path=last" in message
    assert torch.load(folder / "step0000002.ckpt", weights_only=True)["global_step"] == 2
    assert not list(folder.glob(".*.part"))


# -- archives --------------------------------------------------------------------------------


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Made(NamedTuple):
    path: Path
    archive: Archive
    extracts: list[Extract]


def _archive(tmp_path: Path, fmt: str, members: dict[str, bytes]) -> Made:
    path = tmp_path / f"set.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    extracts = [Extract("Set/HR", "Set/HR", count=None)]
    return Made(path, Archive(f"https://example.org/{path.name}", fmt, tuple(extracts)), extracts)


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_a_decompression_bomb_is_refused_before_extraction(tmp_path: Path, fmt: str) -> None:
    # 30 MB of zeros named like an image: a few kB in the archive.
    made = _archive(tmp_path, fmt, {"Set/HR/a.png": _png(0), "Set/HR/b.png": bytes(30 << 20)})
    root = _root(tmp_path)
    with pytest.raises(DownloadError, match="decompression bomb") as info:
        extract_archive(made.path, made.archive, made.extracts, root)
    assert "\n" not in str(info.value)
    assert list(root.iterdir()) == []  # not one byte extracted


def test_an_extraction_that_does_not_fit_is_refused_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _archive(tmp_path, "zip", {f"Set/HR/{i}.png": _png(i) for i in range(3)})
    root = _root(tmp_path)

    class Usage(NamedTuple):
        total: int
        used: int
        free: int

    monkeypatch.setattr("srlab.data.archives.shutil.disk_usage", lambda _: Usage(10**9, 10**9, 100))
    with pytest.raises(DownloadError, match="MiB are free there; nothing was extracted"):
        extract_archive(made.path, made.archive, made.extracts, root)
    assert list(root.iterdir()) == []


def test_a_full_disk_while_extracting_is_a_download_error(tmp_path: Path) -> None:
    members = {"Set/HR/a.png": _png(0), "Set/HR/big.png": np.random.bytes(200_000)}
    made = _archive(tmp_path, "zip", members)
    root = _root(tmp_path)
    with file_size_limit(100_000), pytest.raises(DownloadError) as info:
        extract_archive(made.path, made.archive, made.extracts, root)
    message = str(info.value)
    assert "\n" not in message and "writing big.png failed (File too large)" in message
    assert "nothing was moved into place" in message
    assert list(root.iterdir()) == []  # the staging folder is gone too


def test_a_full_disk_while_downloading_is_a_write_error(tmp_path: Path) -> None:
    from srlab.fetch import WriteError, fetch

    source = tmp_path / "archive.zip"
    source.write_bytes(np.random.bytes(300_000))
    dest = tmp_path / "downloads" / "archive.zip"
    with file_size_limit(100_000), pytest.raises(WriteError) as info:
        fetch(source.as_uri(), dest, retries=2, backoff=30)  # no retry: it would wait 30 s
    assert "File too large" in str(info.value) and str(dest.parent) in str(info.value)
    assert info.value.reason.startswith("cannot write")
    assert list(dest.parent.iterdir()) == []  # neither the file nor a .part
    assert info.value.__cause__.errno == errno.EFBIG

"""Bad images are found before training, each named; on_bad_image=skip trains on the rest.

Every kind of bad file is found before the first step, with or without the decoded-image
cache: those whose header shows it (empty, text, cut short, a decompression bomb, a dangling
link, sizes that disagree) and those that only decoding shows (a JPEG cut inside its image
data, a PNG whose compressed stream is broken under valid checksums). Hidden files
(``.name.png``, macOS ``._name.png`` forks) are not part of a dataset.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config
from PIL import Image

from srlab.app.train import train
from srlab.data import SRDataModule
from srlab.errors import DataError, DatasetNotFoundError


def _pixels(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png(path: Path, height: int, width: int, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_pixels(height, width, seed)).save(path)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_bytes(width: int, height: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def _broken_stream_png(path: Path, side: int) -> None:
    """A PNG whose every chunk checksum is right but whose deflate stream is garbage midway:
    its header and structure (Pillow's verify) pass, decoding fails."""
    rows = _pixels(side, side)
    stream = bytearray(zlib.compress(b"".join(b"\x00" + row.tobytes() for row in rows)))
    stream[len(stream) // 2 : len(stream) // 2 + 40] = bytes(40)
    path.write_bytes(_png_bytes(side, side, bytes(stream)))


def _truncated_jpeg(path: Path, side: int) -> None:
    """A JPEG cut in the middle of its entropy-coded data (a copy cut short)."""
    buffer = io.BytesIO()
    Image.fromarray(_pixels(side, side)).save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _bomb_png(path: Path) -> None:
    """A few hundred bytes whose header claims 100000 x 100000 pixels."""
    path.write_bytes(_png_bytes(100_000, 100_000, zlib.compress(b"\x00" * 100)))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """HR/LR x2 folders with four good pairs and one of each kind of bad file."""
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    for index in range(4):
        _png(hr / f"good{index}.png", 64, 64, index)
        _png(lr / f"good{index}.png", 32, 32, index)
    _png(hr / "truncated.png", 64, 64)
    (hr / "truncated.png").write_bytes((hr / "truncated.png").read_bytes()[:200])
    _png(lr / "truncated.png", 32, 32)
    (hr / "empty.png").write_bytes(b"")
    _png(lr / "empty.png", 32, 32)
    (hr / "text.png").write_text("this is not an image\n")
    _png(lr / "text.png", 32, 32)
    _png(hr / "mismatch.png", 64, 64)
    _png(lr / "mismatch.png", 30, 32)
    _png(hr / "small.png", 32, 32)
    _png(lr / "small.png", 16, 16)
    # Found only by decoding: the header and the chunk checksums are fine.
    _truncated_jpeg(hr / "cut.jpg", 64)
    Image.fromarray(_pixels(32, 32)).save(lr / "cut.jpg", quality=90)
    _broken_stream_png(hr / "stream.png", 64)
    _png(lr / "stream.png", 32, 32)
    _bomb_png(hr / "bomb.png")
    _png(lr / "bomb.png", 32, 32)
    (hr / "gone.png").symlink_to(tmp_path / "moved_away.png")  # a dangling link
    _png(lr / "gone.png", 32, 32)
    for index in range(2):  # the validation set: good images only
        _png(tmp_path / "good_hr" / f"v{index}.png", 64, 64, index)
    # Hidden files are no images of the set: a macOS fork of good0.png and a hidden copy.
    (hr / "._good0.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (lr / "._good0.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    _png(hr / ".hidden.png", 64, 64)
    _png(lr / ".hidden.png", 32, 32)
    return tmp_path


BAD = ["truncated.png", "empty.png", "text.png", "mismatch.png", "small.png"]
# Bad in ways the first round of checks missed: found only by decoding (a cut JPEG, a broken
# PNG stream), a decompression bomb (Pillow's own error), and a link to a file that is gone.
DECODE_BAD = ["cut.jpg", "stream.png"]
BOMB = ["bomb.png"]
DANGLING = ["gone.png"]
HIDDEN = ["._good0.png", ".hidden.png"]


def _datamodule(folder: Path, cache: bool = False, **kwargs) -> SRDataModule:
    return SRDataModule.from_folder(
        folder / "HR", folder / "LR", scale=2, root=folder,
        val_sets=[{"name": "V", "hr_dir": str(folder / "good_hr")}], patch_size=48,
        num_workers=0, cache=cache, cache_dir=folder / "cache", **kwargs,
    )  # fmt: skip


def _names(message: str, names: list[str]) -> list[str]:
    """Those of ``names`` that ``message`` lists as bad files (lines ``<path>/<name>: why``)."""
    return [name for name in names if f"/{name}: " in message]


def _error(folder: Path, cache: bool = False) -> str:
    with pytest.raises(DataError) as info:
        _datamodule(folder, cache=cache, on_bad_image="error").verify()
    return str(info.value)


def test_every_bad_file_is_named_before_training(folder: Path) -> None:
    message = _error(folder)
    for name in BAD:
        assert name in message, f"{name} not reported:\n{message}"
    assert "on_bad_image=skip" in message


@pytest.mark.parametrize("cache", [False, True], ids=["decode", "cache"])
def test_files_that_only_decoding_finds_are_named(folder: Path, cache: bool) -> None:
    # With the cache, the check is its build: each file decodes into it or is listed.
    message = _error(folder, cache)
    assert _names(message, DECODE_BAD) == DECODE_BAD, message
    assert "image file is truncated" in message and "broken data stream" in message


def test_a_decompression_bomb_joins_the_list(folder: Path) -> None:
    message = _error(folder)
    assert _names(message, BOMB) == BOMB and "decompression bomb" in message, message
    assert _names(message, BAD) == BAD  # listed with the others, not a traceback of its own


def test_hidden_files_are_left_out_and_dangling_links_named(folder: Path) -> None:
    message = _error(folder)
    assert _names(message, DANGLING) == DANGLING, message
    assert "a symbolic link to" in message and "moved_away.png" in message
    assert _names(message, HIDDEN) == [], message
    assert ".hidden" not in message and "._good0" not in message


@pytest.mark.parametrize("cache", [False, True], ids=["decode", "cache"])
def test_skip_keeps_the_good_images(folder: Path, cache: bool) -> None:
    datamodule = _datamodule(folder, cache=cache, on_bad_image="skip")
    datamodule.verify()
    assert sorted(p.name for p in datamodule.train_pairs()) == [f"good{i}" for i in range(4)]
    assert datamodule.build_cache() >= 0  # with the cache: built from the good images only


def test_missing_lr_and_empty_folder_are_named(tmp_path: Path) -> None:
    _png(tmp_path / "HR" / "a.png", 64, 64)
    (tmp_path / "LR").mkdir()
    with pytest.raises(DatasetNotFoundError, match="a.png"):
        _datamodule(tmp_path).verify()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="holds no images"):
        SRDataModule.from_folder(
            tmp_path / "empty", scale=2, root=tmp_path, val_sets=["sample"]
        ).verify()


@pytest.mark.parametrize("cache", ["true", "false"])
def test_training_runs_on_the_rest_with_skip(folder: Path, tmp_path: Path, cache: str) -> None:
    overrides = [
        "debug=fast", "trainer.accelerator=cpu", "logger=csv", "test=false", "data=folder",
        f"data.hr_dir={folder / 'HR'}", f"data.lr_dir={folder / 'LR'}", "data.val_sets=[sample]",
        "data.on_bad_image=skip", f"data.cache={cache}", f"data.cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip
    assert train(compose_config(tmp_path / "run", overrides)) is not None

"""The decoded-image cache (data.cache) and the loader settings (num_workers, pin_memory)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from PIL import Image

import srlab.data.datasets as datasets
from srlab.data import SRDataModule, read_image
from srlab.data.cache import DecodedCache
from srlab.data.datamodule import usable_cpus
from srlab.data.datasets import ImagePair, PatchDataset, load_pair
from srlab.data.sampling import PatchKey
from srlab.errors import ConfigError
from srlab.files import HOST


def _png(path: Path, height: int, width: int, seed: int, gray: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (height, width) if gray else (height, width, 3)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three HR images (one grayscale, sizes not multiples of 3) without LR files."""
    _png(tmp_path / "HR" / "a.png", 50, 61, 0)
    _png(tmp_path / "HR" / "b.png", 47, 40, 1, gray=True)
    _png(tmp_path / "HR" / "c.png", 45, 45, 2)
    return tmp_path


def _datamodule(folder: Path, cache: bool = True, **kwargs) -> SRDataModule:
    return SRDataModule.from_folder(
        folder / "HR", scale=3, root=folder, val_sets=[{"name": "V", "hr_dir": "HR"}],
        patch_size=24, batch_size=2, num_workers=0, cache=cache,
        cache_dir=folder / "cache", seed=0, **kwargs,
    )  # fmt: skip


def _count_decodes(monkeypatch) -> list[Path]:
    """Record every image file that srlab.data.datasets decodes."""
    decoded: list[Path] = []

    def counting_read_image(path):
        decoded.append(Path(path))
        return read_image(path)

    monkeypatch.setattr(datasets, "read_image", counting_read_image)
    return decoded


def _entries(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (folder / "cache" / "decoded").glob("*.npy")}


def test_cache_is_built_once_and_reused(folder: Path, monkeypatch) -> None:
    assert _datamodule(folder).build_cache() == 6  # HR and made LR of each image
    entries = _entries(folder)
    assert len(entries) == 6
    decodes = _count_decodes(monkeypatch)
    again = _datamodule(folder)  # a second run
    assert again.build_cache() == 0
    again.setup("fit")
    for batch in again.train_dataloader():
        assert batch["hr"].shape == (2, 3, 24, 24)
    assert decodes == [] and _entries(folder) == entries


def test_changed_source_is_decoded_again(folder: Path) -> None:
    _datamodule(folder).build_cache()
    _png(folder / "HR" / "a.png", 50, 61, 7)  # new content, same name and size
    os.utime(folder / "HR" / "a.png", ns=(1, 1))
    datamodule = _datamodule(folder)
    assert datamodule.build_cache() == 2  # a's HR and LR; b and c are kept
    pair = next(p for p in datamodule.train_pairs() if p.name == "a")
    hr, _ = load_pair(pair, 3, channels=None, decoded=datamodule.decoded)
    assert np.array_equal(hr, read_image(pair.hr)[:48, :60])


def test_interrupted_build_leftovers_are_harmless(folder: Path, caplog) -> None:
    datamodule = _datamodule(folder)
    datamodule.verify()  # decodes every image into the cache: start again from none
    pair = next(p for p in datamodule.train_pairs() if p.name == "c")
    cache = datamodule.decoded
    entry = cache.entry(pair.hr)
    for made in entry.parent.glob("*.npy"):
        made.unlink()
    # A killed build leaves its temporary file; a machine crash may leave a cut entry.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    temp = entry.with_name(f".{entry.name}.somehost.{os.getpid()}.1.part")
    temp.write_bytes(b"\x93NUMPY half")
    dead_temp = entry.with_name(f".{entry.name}.{HOST}.{dead.pid}.1.part")
    dead_temp.write_bytes(b"\x93NUMPY half")
    np.save(entry, np.zeros((45, 45, 3), np.uint8))
    entry.write_bytes(entry.read_bytes()[:200])
    datamodule = _datamodule(folder)
    assert datamodule.build_cache() == 6
    assert "is unreadable" in caplog.text  # the cut entry, made again
    assert np.array_equal(cache.get(pair.hr, lambda: None), read_image(pair.hr))
    assert not dead_temp.exists()  # its writer is gone
    assert temp.exists()  # another host's writer may still be at it


def test_patches_from_cache_equal_patches_from_decoding(folder: Path) -> None:
    _png(folder / "LR" / "a.png", 16, 20, 3)  # LR files for a folder of HR images
    _png(folder / "LR" / "b.png", 15, 13, 4, gray=True)
    _png(folder / "LR" / "c.png", 15, 15, 5)
    for lr_dir in (None, folder / "LR"):
        datamodule = _datamodule(folder, lr_dir=lr_dir)
        datamodule.setup("fit")
        pairs = datamodule.train_pairs()
        plain = PatchDataset(pairs, 3, 24)
        cached = PatchDataset(pairs, 3, 24, decoded=datamodule.decoded)
        for seed in range(12):
            key = PatchKey(seed % 3, seed, 3)
            expected, item = plain[key], cached[key]
            assert torch.equal(item["lr"], expected["lr"]) and torch.equal(
                item["hr"], expected["hr"]
            )
        hr, lr = cached._load(1)  # the grayscale image, expanded to RGB without a copy
        assert hr.shape[2] == lr.shape[2] == 3 and not hr.flags.writeable


def _build(cache_folder: str, pairs: list[ImagePair], queue) -> None:
    cache = DecodedCache(cache_folder)
    fill = lambda pair: load_pair(pair, 2, None, cache)  # noqa: E731
    queue.put(cache.build(pairs, fill, workers=2))


def test_two_processes_building_at_once(tmp_path: Path) -> None:
    pairs = [
        ImagePair(name, _png(tmp_path / "HR" / f"{name}.png", 64, 64, i),
                  _png(tmp_path / "LR" / f"{name}.png", 32, 32, i + 10))
        for i, name in enumerate("abcdef")
    ]  # fmt: skip
    context = multiprocessing.get_context("fork")  # no re-import of torch: a fast test
    queue = context.Queue()
    builders = [
        context.Process(target=_build, args=(str(tmp_path / "cache"), pairs, queue))
        for _ in range(2)
    ]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join(60)
        assert builder.exitcode == 0
    # The lock lets one build; the other waits and finds every entry made.
    assert sorted(queue.get() for _ in builders) == [0, 12]
    cache = DecodedCache(tmp_path / "cache")
    for pair in pairs:
        for path in (pair.hr, pair.lr):
            assert np.array_equal(cache.get(path, lambda: None), read_image(path))
    assert not list((tmp_path / "cache").glob(".*.part"))


def test_cache_false_decodes_per_use(folder: Path, monkeypatch) -> None:
    datamodule = _datamodule(folder, cache=False)
    assert datamodule.decoded is None and datamodule.build_cache() == 0
    decodes = _count_decodes(monkeypatch)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["lr"].shape == (2, 3, 8, 8) and len(decodes) >= 2
    assert not (folder / "cache" / "decoded").exists()
    with pytest.raises(ConfigError, match="data.cache_dir"):
        SRDataModule(scale=2, root=".", train="sample_train", val_sets=["sample"], cache=True)


def test_real_config_composes_with_cache(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["data=div2k"])
    datamodule = instantiate(cfg.data, _convert_="all")
    assert datamodule.decoded.folder == Path(cfg.paths.cache_dir) / "decoded"
    assert cfg.data.num_workers == "auto" and 0 <= datamodule.num_workers() <= 8
    cfg = compose_config(tmp_path, ["data.cache=false"])
    assert instantiate(cfg.data, _convert_="all").decoded is None


def test_num_workers_auto_and_pinned_memory(monkeypatch) -> None:
    datamodule = SRDataModule(scale=2, root=".", train=None, val_sets=["sample"])
    monkeypatch.setattr("srlab.data.datamodule.usable_cpus", lambda: 2)
    assert datamodule.num_workers() == 1  # one core stays with the network

    class _Device:
        type = "cuda"

    class _Trainer:
        num_devices = 2
        strategy = type("Strategy", (), {"root_device": _Device()})()

    datamodule.trainer = _Trainer()
    assert datamodule.num_workers() == 0  # two DDP processes on two cores
    monkeypatch.setattr("srlab.data.datamodule.usable_cpus", lambda: 64)
    assert datamodule.num_workers() == 8
    assert datamodule._pin_memory()  # training on CUDA
    _Device.type = "cpu"
    assert not datamodule._pin_memory()
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    with pytest.raises(ConfigError, match="data.num_workers='many'"):
        SRDataModule(scale=2, root=".", train=None, val_sets=["sample"], num_workers="many")

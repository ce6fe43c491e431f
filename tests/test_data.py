"""Image reading, dataset layouts, aligned patches and the DataModule."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srlab.data import PatchDataset, SRDataModule, get_image_set, list_pairs, read_image
from srlab.data.datasets import EvalDataset, ImagePair, centre_crop, load_pair
from srlab.errors import ConfigError, DataError, DatasetNotFoundError, ImageReadError
from srlab.imaging import imresize
from srlab.imaging.io import write_image


def _write(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def _random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth content, so that bicubic LR is meaningful.
    base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, channels), dtype=np.uint8)
    image = np.asarray(Image.fromarray(base.squeeze()).resize((width, height), Image.BILINEAR))
    return image


# -- reading -------------------------------------------------------------------------------


def test_read_image_modes(tmp_path: Path, caplog) -> None:
    rgb = _random_image(16, 20)
    assert read_image(_write(tmp_path / "rgb.png", rgb)).shape == (16, 20, 3)
    gray = rgb[..., 0]
    assert read_image(_write(tmp_path / "gray.png", gray)).shape == (16, 20, 1)

    rgba = np.concatenate([rgb, np.full((16, 20, 1), 128, np.uint8)], axis=2)
    with caplog.at_level(logging.WARNING):
        out = read_image(_write(tmp_path / "rgba.png", rgba))
    assert out.shape == (16, 20, 3) and np.array_equal(out, rgb)
    assert "alpha" in caplog.text and "rgba.png" in caplog.text

    sixteen = (gray.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    out16 = read_image(tmp_path / "g16.png")
    assert out16.dtype == np.uint8 and np.array_equal(out16[..., 0], gray)


def test_read_image_16bit_colour_and_tiff(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(0)
    rgba16 = rng.integers(0, 65536, (6, 9, 4), dtype=np.uint16)
    for name in ("rgba16.png", "rgba16.tif"):
        write_image(tmp_path / name, rgba16)
        with caplog.at_level(logging.WARNING):
            out = read_image(tmp_path / name)
        assert "alpha" in caplog.text and name in caplog.text
        # round(v / 257) of all 16 bits, not Pillow's high byte
        assert np.array_equal(out, np.round(rgba16[..., :3] / 257).astype(np.uint8))
        assert out.flags.writeable and out.flags.c_contiguous


def test_unreadable_image_names_the_file(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "truncated.png"
    _write(bad, _random_image(32, 32))
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="truncated.png"):
        read_image(bad)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png: empty file"):
        read_image(tmp_path / "empty.png")
    _write(tmp_path / "bomb.png", _random_image(32, 32))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="bomb.png.*decompression bomb"):
        read_image(tmp_path / "bomb.png")


# -- layouts -------------------------------------------------------------------------------


def test_missing_set_error_names_folder_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        list_pairs(get_image_set("div2k_train"), tmp_path, 4)
    message = str(info.value)
    assert str(tmp_path / "DIV2K" / "DIV2K_train_HR") in message
    assert "DIV2K_train_LR_bicubic" in message and "data.root" in message
    assert "https://" in message  # where to get it


def test_lr_files_are_paired_and_checked(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _write(tmp_path / "Set5" / "HR" / f"{name}.png", _random_image(24, 24))
    pairs = list_pairs(get_image_set("set5"), tmp_path, 2)
    assert [p.lr for p in pairs] == [None, None]  # no LR folder: LR is made

    _write(tmp_path / "Set5" / "LR_bicubic" / "X2" / "ax2.png", _random_image(12, 12))
    with pytest.raises(DatasetNotFoundError, match="bx2.png"):
        list_pairs(get_image_set("set5"), tmp_path, 2)
    _write(tmp_path / "Set5" / "LR_bicubic" / "X2" / "bx2.png", _random_image(10, 12))
    pairs = list_pairs(get_image_set("set5"), tmp_path, 2)
    assert pairs[0].lr.name == "ax2.png"
    with pytest.raises(DataError, match="bx2.png"):  # 12x10 is not 24x24 / 2
        load_pair(pairs[1], 2, channels=None)


def test_unknown_set_and_bad_mapping_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="known sets"):
        get_image_set("set6")
    with pytest.raises(ConfigError, match="hr_dir"):
        get_image_set({"name": "X", "hr_folder": "/x"})


def test_shared_benchmark_layout(shared_data: Path) -> None:
    pairs = list_pairs(get_image_set("set14"), shared_data / "benchmarks", 3)
    assert len(pairs) == 14 and all(p.lr is not None for p in pairs)
    bridge = next(p for p in pairs if p.name == "bridge")
    hr, lr = load_pair(bridge, 3, channels=None)
    assert hr.shape[2] == lr.shape[2] == 1  # grayscale stays one channel for scoring
    hr3, _ = load_pair(bridge, 3, channels=3)
    assert hr3.shape[2] == 3


# -- patches -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_patch_alignment_matches_imresize_of_hr_patch(tmp_path: Path, scale: int) -> None:
    hr = _random_image(120, 132, seed=scale)
    pair = ImagePair("img", _write(tmp_path / "img.png", hr), None)
    dataset = PatchDataset([pair], scale, patch_size=24 * scale, augment=False)
    torch.manual_seed(0)
    for _ in range(5):
        item = dataset[0]
        lr_patch, hr_patch = item["lr"], item["hr"]
        assert hr_patch.shape[-1] == lr_patch.shape[-1] * scale
        lr_of_hr = imresize(hr_patch, scale=1 / scale)
        # Away from the patch border the kernel does not see the patch edge (4 LR px margin).
        inner = (slice(None), slice(4, -4), slice(4, -4))
        diff = (lr_of_hr[inner] - lr_patch[inner]).abs().max().item()
        assert diff <= 1.01 / 255, f"LR patch misaligned with HR patch (max diff {diff * 255})"


def test_augmentation_transforms_lr_and_hr_alike(tmp_path: Path) -> None:
    hr = _random_image(64, 64)
    pair = ImagePair("img", _write(tmp_path / "img.png", hr), None)
    dataset = PatchDataset([pair], 2, patch_size=32, augment=True, repeat=3)
    assert len(dataset) == 3
    torch.manual_seed(1)
    for index in range(12):
        item = dataset[index % 3]
        down = torch.nn.functional.avg_pool2d(item["hr"][None], 2)[0]
        # The LR patch is the bicubic LR of the same (transformed) region: close to its box mean.
        assert (down - item["lr"]).abs().mean() < 0.05


def test_patch_size_must_be_multiple_of_scale(tmp_path: Path) -> None:
    pair = ImagePair("img", _write(tmp_path / "img.png", _random_image(64, 64)), None)
    with pytest.raises(DataError, match="multiple of scale=3"):
        PatchDataset([pair], 3, patch_size=32)


# -- datamodule ----------------------------------------------------------------------------


def test_sample_datamodule_batches() -> None:
    datamodule = SRDataModule(
        scale=4, root="/nonexistent", train="sample_train", val_sets=["sample"],
        patch_size=64, batch_size=4, num_workers=0, in_memory=True,
    )  # fmt: skip
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["lr"].shape == (4, 3, 16, 16) and batch["hr"].shape == (4, 3, 64, 64)
    assert batch["lr"].dtype == torch.float32 and 0 <= batch["lr"].min() <= batch["lr"].max() <= 1
    (val_loader,) = datamodule.val_dataloader()
    item = next(iter(val_loader))
    assert item["hr"].shape[-2] == 4 * item["lr"].shape[-2]
    assert datamodule.val_set_names == ["Sample"]


def test_duplicate_val_sets_rejected() -> None:
    with pytest.raises(ConfigError, match="twice"):
        SRDataModule(scale=2, root=".", train=None, val_sets=["set5", "Set5"])


def test_multiscale_batches_share_one_scale(tmp_path: Path) -> None:
    for index in range(3):
        _write(tmp_path / "HR" / f"{index}.png", _random_image(60, 72, seed=index))
    datamodule = SRDataModule(
        scale=2, root=tmp_path, train={"name": "T", "hr_dir": "HR"},
        val_sets=[{"name": "V", "hr_dir": "HR"}], patch_size=25, batch_size=2, repeat=20,
        num_workers=0, train_scales=[2, 3, 4],
    )  # fmt: skip
    torch.manual_seed(0)
    datamodule.setup("fit")
    seen = set()
    for batch in datamodule.train_dataloader():
        scale = int(batch["scale"][0])
        assert (batch["scale"] == scale).all()
        lr_side = 25 // scale
        assert batch["lr"].shape[-1] == lr_side and batch["hr"].shape[-1] == lr_side * scale
        seen.add(scale)
    assert seen == {2, 3, 4}


def test_made_lr_is_cached_on_disk_and_lr_modes(tmp_path: Path) -> None:
    hr = _random_image(24, 36)
    _write(tmp_path / "Set5" / "HR" / "a.png", hr)
    _write(tmp_path / "Set5" / "LR_bicubic" / "X2" / "ax2.png", np.zeros((12, 18, 3), np.uint8))
    cache = tmp_path / "cache"
    (pair,) = list_pairs(get_image_set("set5"), tmp_path, 2, lr="generate", cache_dir=cache)
    assert pair.lr is None
    _, lr = load_pair(pair, 2, channels=None)
    (cached,) = (cache / "lr" / "x2").glob("a-*.png")
    assert np.array_equal(read_image(cached), lr)
    assert np.array_equal(load_pair(pair, 2, channels=None)[1], lr)  # served from the cache
    (auto,) = list_pairs(get_image_set("set5"), tmp_path, 2)
    assert auto.lr.name == "ax2.png"
    with pytest.raises(DatasetNotFoundError, match="data.lr=files"):
        list_pairs(get_image_set("set5"), tmp_path, 3, lr="files")
    with pytest.raises(ConfigError, match="data.lr"):
        list_pairs(get_image_set("set5"), tmp_path, 2, lr="bicubic")


@pytest.mark.parametrize("cache", [False, True])
def test_downscaled_copies_are_hr_shrunk_by_matlab_bicubic(tmp_path: Path, cache: bool) -> None:
    hr = _random_image(50, 62)
    _write(tmp_path / "HR" / "a.png", hr)
    datamodule = SRDataModule(
        scale=2, root=tmp_path, train={"name": "T", "hr_dir": "HR"}, val_sets=[{"name": "V", "hr_dir": "HR"}],
        patch_size=8,
        batch_size=1, num_workers=0, downscaled_copies=[0.9, 0.6], cache=cache,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    datamodule.prepare_data()
    datamodule.setup("fit")
    pairs = datamodule.train_pairs()
    assert [(p.name, p.downscale) for p in pairs] == [("a", 1.0), ("a@0.9", 0.9), ("a@0.6", 0.6)]
    chw = torch.from_numpy(hr.transpose(2, 0, 1).copy())
    for pair in pairs[1:]:
        got_hr, got_lr = load_pair(pair, 2, channels=None, decoded=datamodule.decoded)
        # MATLAB's size: ceil(0.9 * 50) x ceil(0.9 * 62) = 45 x 56, mod-cropped to 44 x 56.
        small = imresize(chw, scale=pair.downscale)
        assert small.shape[1:] == (math.ceil(50 * pair.downscale), math.ceil(62 * pair.downscale))
        small = small[:, : small.shape[1] // 2 * 2, : small.shape[2] // 2 * 2]
        assert np.array_equal(got_hr, small.numpy().transpose(1, 2, 0))
        assert np.array_equal(got_lr, imresize(small, scale=0.5).numpy().transpose(1, 2, 0))
    # The original's LR is unchanged by its copies.
    assert np.array_equal(
        load_pair(pairs[0], 2, channels=None)[1],
        imresize(chw[:, :50, :62], scale=0.5).numpy().transpose(1, 2, 0),
    )


def test_downscaled_copies_errors(tmp_path: Path) -> None:
    _write(tmp_path / "HR" / "a.png", _random_image(40, 40))
    _write(tmp_path / "LR" / "ax2.png", _random_image(20, 20))

    def module(**kwargs):
        spec = {"name": "T", "hr_dir": "HR", **kwargs.pop("spec", {})}
        args = {"patch_size": 8, "batch_size": 1, "num_workers": 0, **kwargs}
        val = [{"name": "V", "hr_dir": "HR"}]
        return SRDataModule(scale=2, root=tmp_path, train=spec, val_sets=val, **args)

    with pytest.raises(ConfigError, match=r"between 0 and 1.*\[1\.5\]"):
        module(downscaled_copies=[0.9, 1.5]).setup("fit")
    with_lr = {"spec": {"lr_dir": "LR", "lr_name": "{stem}x{scale}{ext}"}}
    with pytest.raises(ConfigError, match="data.lr=generate"):
        module(downscaled_copies=[0.9], **with_lr).setup("fit")
    module(downscaled_copies=[0.9], lr="generate", **with_lr).setup("fit")
    # 0.3 * 40 = 12 px < a 16 px patch: named, or left out with on_bad_image=skip.
    with pytest.raises(DataError, match=r"(?s)a.png x0.3: 12x12.*on_bad_image=skip"):
        module(downscaled_copies=[0.9, 0.3], patch_size=16).setup("fit")
    skipping = module(downscaled_copies=[0.9, 0.3], patch_size=16, on_bad_image="skip")
    skipping.setup("fit")
    assert [p.name for p in skipping.train_pairs()] == ["a", "a@0.9"]


def test_batch_size_is_global_under_ddp() -> None:
    datamodule = SRDataModule(scale=2, root=".", train=None, val_sets=["sample"], batch_size=16)
    assert datamodule.per_rank_batch_size() == 16  # no trainer: one process

    class _Trainer:
        world_size = 4

    datamodule.trainer = _Trainer()
    assert datamodule.per_rank_batch_size() == 4
    datamodule.trainer.world_size = 3
    with pytest.raises(ConfigError, match="data.batch_size=15"):
        datamodule.per_rank_batch_size()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_eval_crop_is_the_centre_of_hr_and_the_lr_under_it(scale: int) -> None:
    hr = np.arange(61 * 47 * 3, dtype=np.int64).reshape(61, 47, 3) % 251
    hr = hr[: 61 - 61 % scale, : 47 - 47 % scale].astype(np.uint8)
    lr = hr[::scale, ::scale]  # a stand-in LR whose pixel (i, j) sits under HR (i*s, j*s)
    hr_crop, lr_crop = centre_crop(hr, lr, 24, scale)
    assert hr_crop.shape[:2] == (24 // scale * scale,) * 2
    assert lr_crop.shape[:2] == (24 // scale,) * 2
    np.testing.assert_array_equal(hr_crop[::scale, ::scale], lr_crop)
    top = (lr.shape[0] - 24 // scale) // 2 * scale
    np.testing.assert_array_equal(hr_crop[0, 0], hr[top, (lr.shape[1] - 24 // scale) // 2 * scale])
    # A crop larger than the image is the whole image.
    whole_hr, whole_lr = centre_crop(hr, lr, 1000, scale)
    assert whole_hr.shape == hr.shape and whole_lr.shape == lr.shape


def test_eval_dataset_crops_when_asked(tmp_path: Path) -> None:
    image = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    pairs = list_pairs(get_image_set({"name": "Tiny", "hr_dir": str(tmp_path)}), tmp_path, 2)
    item = EvalDataset(pairs, scale=2, crop=32)[0]
    assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 16, 16)
    assert EvalDataset(pairs, scale=2)[0]["hr"].shape == (3, 50, 70)
    with pytest.raises(DataError, match="data.eval_crop=1"):
        EvalDataset(pairs, scale=2, crop=1)

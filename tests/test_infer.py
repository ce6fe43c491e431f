"""src/infer.py: image files in, super-resolved files out, with names, folders, channels, bit
depth and failures handled as a user expects. Runs the real config in-process (one test runs
the entry point itself, for its exit status)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, compose_config
from PIL import Image, ImageCms, ImageOps

from srlab.app.infer import InferenceOptions, find_inputs, infer, load_image, plan_jobs
from srlab.app.network import build_network
from srlab.errors import ConfigError, ImageReadError
from srlab.imaging import imresize
from srlab.imaging.io import read_full, write_image
from srlab.imaging.predict import LoadedImage, make_predictor, upscale_images
from srlab.imaging.tiling import ForwardMemory, budget_tile, tile_work, tiled_forward
from srlab.models import EDSR

RNG = np.random.default_rng(0)


def smooth(height: int, width: int, channels: int, peak: int = 255) -> np.ndarray:
    """A smooth random-looking image (pure noise would make bicubic checks meaningless)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [np.sin(7 * x + 3 * y + c) * np.cos(5 * y - 2 * x * c) for c in range(channels)]
    array = (np.stack(planes, -1) * 0.5 + 0.5) * peak
    return np.round(array).astype(np.uint16 if peak > 255 else np.uint8)


def infer_cfg(tmp_path: Path, source: Path, *overrides: str):
    """The config of `python src/infer.py input=<source> output=<tmp>/sr ...`."""
    return compose_config(
        tmp_path / "run",
        [
            "model=bicubic",
            "scale=2",
            f"input={source}",
            f"output={tmp_path / 'sr'}",
            "progress=false",
            *overrides,
        ],
        config_name="infer",
    )


@pytest.fixture()
def photo_folder(tmp_path: Path) -> Path:
    """A folder with RGB, grayscale, RGBA, 16-bit gray, 16-bit RGB and a corrupt file."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(smooth(10, 12, 3)).save(root / "rgb.png")
    Image.fromarray(smooth(9, 11, 1)[..., 0]).save(root / "sub" / "gray.png")
    Image.fromarray(smooth(8, 10, 4), "RGBA").save(root / "sub" / "deeper" / "rgba.png")
    Image.fromarray(smooth(10, 7, 1, 65535)[..., 0]).save(root / "gray16.png")  # mode I;16
    write_image(root / "rgb16.png", smooth(6, 9, 3, 65535))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing an image needs")
    (root / "notes.txt").write_text("not an image: ignored, not reported")
    return root


def test_every_kind_of_image_keeps_its_name_folder_mode_and_depth(
    tmp_path: Path, photo_folder: Path
) -> None:
    report = infer(infer_cfg(tmp_path, photo_folder, "model=bicubic"))
    sr = tmp_path / "sr"

    assert not report.ok
    assert [(p.name, reason.split(":")[0]) for p, reason in report.failed] == [
        ("broken.png", "unreadable")
    ]
    assert sorted(p.relative_to(sr).as_posix() for p in report.written) == [
        "gray16.png",
        "rgb.png",
        "rgb16.png",
        "sub/deeper/rgba.png",
        "sub/gray.png",
    ]
    expected = {  # file: (mode as Pillow opens it, size W x H)
        "rgb.png": ("RGB", (24, 20)),
        "sub/gray.png": ("L", (22, 18)),
        "sub/deeper/rgba.png": ("RGBA", (20, 16)),
        "gray16.png": ("I;16", (14, 20)),
        "rgb16.png": ("RGB", (18, 12)),  # Pillow reads the high bytes of 16-bit RGB
    }
    for name, (mode, size) in expected.items():
        with Image.open(sr / name) as image:
            assert (image.mode, image.size) == (mode, size), name

    # 16 bits all the way: the gray16 output is the MATLAB-bicubic upscale of the 16-bit
    # values (8-bit processing would put it off by up to 128 levels).
    gray16 = np.asarray(Image.open(photo_folder / "gray16.png"), dtype=np.float64) / 65535
    want = imresize(torch.from_numpy(gray16), size=(20, 14)).clamp(0, 1) * 65535
    got = np.asarray(Image.open(sr / "gray16.png"), dtype=np.float64)
    assert np.abs(got - want.round().numpy()).max() <= 1
    rgb16 = read_full(sr / "rgb16.png").array
    assert rgb16.dtype == np.uint16 and rgb16.shape == (12, 18, 3)
    assert np.any(rgb16 % 257 != 0)  # not 8-bit values stretched to 16 bits
    high_bytes = np.asarray(Image.open(sr / "rgb16.png"))
    np.testing.assert_array_equal(high_bytes, rgb16 >> 8)  # a standard PNG, Pillow agrees

    # Alpha is upscaled on its own by MATLAB bicubic and re-attached.
    alpha = torch.from_numpy(smooth(8, 10, 4)[..., 3].astype(np.float64) / 255)
    want_alpha = (imresize(alpha, size=(16, 20)).clamp(0, 1) * 255).round().numpy()
    got_alpha = np.asarray(Image.open(sr / "sub" / "deeper" / "rgba.png"))[..., 3]
    assert np.abs(got_alpha.astype(int) - want_alpha).max() <= 1


def test_entry_point_reports_bad_files_and_exits_non_zero(
    tmp_path: Path, photo_folder: Path
) -> None:
    command = [
        sys.executable,
        "src/infer.py",
        "model=bicubic",
        "scale=2",
        f"input={photo_folder}",
        f"output={tmp_path / 'out'}",
        "format=jpg",
        "quality=90",
        "suffix=_x2",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "broken.png" in output and "unreadable" in output
    assert "JPEG has no alpha channel" in output  # the RGBA input, said once
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")
    )
    assert written == [
        "gray16_x2.jpg",
        "rgb16_x2.jpg",
        "rgb_x2.jpg",
        "sub/deeper/rgba_x2.jpg",
        "sub/gray_x2.jpg",
    ]
    assert Image.open(tmp_path / "out" / "sub" / "gray_x2.jpg").mode == "L"
    assert "1 file(s) failed" in (tmp_path / "run" / "infer.log").read_text()


def edsr_baseline_weights(tmp_path: Path, **size: int) -> Path:
    """A state dict of an x2 EDSR of random weights (EDSR-baseline unless ``size`` says)."""
    torch.manual_seed(0)
    net = EDSR(num_feat=size.get("num_feat", 64), num_block=size.get("num_block", 16), upscale=2)
    path = tmp_path / "edsr_x2.pth"
    torch.save(net.state_dict(), path)
    return path


def test_tiled_equals_untiled_for_edsr_baseline(tmp_path: Path) -> None:
    weights = edsr_baseline_weights(tmp_path)
    image = LoadedImage(
        torch.from_numpy(smooth(96, 80, 3).astype(np.float32) / 255).permute(2, 0, 1)
    )
    outputs = {}
    # 36 LR pixels are EDSR-baseline's receptive field radius (35 LR convs + 1 HR conv): with
    # that overlap every output pixel sees its whole context; 48-pixel tiles make a 2x2 grid
    # whose tiles each see only part of the image.
    # auto: the image fits the default budget (half the free memory), so it runs whole.
    for tile in ("null", "48", "auto"):
        cfg = infer_cfg(
            tmp_path,
            tmp_path,
            "model=edsr_baseline",
            f"ckpt_path={weights}",
            f"inference.tile={tile}",
            "inference.tile_overlap=36",
        )
        options = InferenceOptions.from_config(cfg)
        predict = make_predictor(build_network(cfg).net, 2, options.tile, options.tile_overlap)
        (outputs[tile],) = upscale_images(predict, [image], 2, torch.device("cpu"))
    assert outputs["48"].pixels.shape == (3, 192, 160)
    torch.testing.assert_close(outputs["48"].pixels, outputs["null"].pixels, atol=1e-5, rtol=0)
    assert torch.equal(outputs["auto"].pixels, outputs["null"].pixels)


def reference_tiled_forward(forward, lr, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """srlab's tiled forward before tiles were planned and batched (commit 3f0791e): one
    tile per call, row by row, pasted into a zeroed output. The new one must match it bit for
    bit with one tile per call."""
    height, width = lr.shape[-2:]
    output = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            top0, left0 = max(top - overlap, 0), max(left - overlap, 0)
            bottom1, right1 = min(top + tile + overlap, height), min(left + tile + overlap, width)
            sr = forward(lr[..., top0:bottom1, left0:right1])
            if output is None:
                output = sr.new_zeros(*sr.shape[:-2], height * scale, width * scale)
            rows, cols = min(tile, height - top) * scale, min(tile, width - left) * scale
            row0, col0 = (top - top0) * scale, (left - left0) * scale
            output[..., top * scale : top * scale + rows, left * scale : left * scale + cols] = sr[
                ..., row0 : row0 + rows, col0 : col0 + cols
            ]
    return output


@pytest.mark.parametrize(("tile", "overlap"), [(16, 4), (24, 8), (40, 0), (64, 32)])
def test_tiles_are_bit_identical_to_the_previous_tiling(tile: int, overlap: int) -> None:
    torch.manual_seed(0)
    net = EDSR(num_feat=16, num_block=2, upscale=2).eval()
    lr = torch.rand(2, 3, 37, 53)  # two images; edges of every width, a 1-pixel-wide last row
    with torch.inference_mode():
        expected = reference_tiled_forward(net, lr, 2, tile, overlap)
        predict = make_predictor(net, 2, tile, overlap)
        assert torch.equal(predict(lr), expected)
        # Several tiles per forward: the same tiles, other float rounding of the convolutions.
        batched = make_predictor(net, 2, tile, overlap, tile_batch=5)(lr)
    torch.testing.assert_close(batched, expected, atol=1e-5, rtol=0)


def test_tile_work_counts_the_recomputed_overlap() -> None:
    # 512 x 512 in tiles of 128 with 16 of overlap: 4 corner tiles of 144 x 144, 8 edge tiles
    # of 144 x 160, 4 inner tiles of 160 x 160.
    expected = (4 * 144 * 144 + 8 * 144 * 160 + 4 * 160 * 160) / (512 * 512)
    assert tile_work(512, 512, 128, 16) == expected
    assert tile_work(512, 512, 512, 32) == 1.0 == tile_work(30, 40, 16, 0)


def conv_chain(channels: int, layers: int) -> torch.nn.Module:
    """A plain chain of 3x3 convolutions (x1): under no_grad it holds two feature maps at
    once, the last output and the one being computed."""
    torch.manual_seed(0)
    convs = [
        torch.nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1) for i in range(layers)
    ]
    return torch.nn.Sequential(*convs, torch.nn.Conv2d(channels, 3, 3, padding=1)).eval()


def test_forward_memory_counts_the_feature_maps_held_at_once() -> None:
    with torch.no_grad():
        memory = ForwardMemory.measure(conv_chain(8, 4), torch.rand(1, 3, 5, 5))
    # Two float32 maps of 8 channels per LR pixel, nothing that does not grow with the image.
    assert memory == ForwardMemory(fixed=0.0, per_pixel=2 * 8 * 4)
    with torch.no_grad():  # a batch of 3 images holds 3 times as much
        assert ForwardMemory.measure(conv_chain(8, 4), torch.rand(3, 3, 5, 5)).per_pixel == 192


def test_auto_tile_runs_whole_images_that_fit_and_the_largest_tiles_otherwise() -> None:
    net, lr = conv_chain(8, 4), torch.rand(1, 3, 50, 70)
    memory = ForwardMemory(fixed=0.0, per_pixel=64)
    whole = memory.bytes(50, 70)
    assert budget_tile(memory, 50, 70, 4, whole) is None
    # 40x40 pixels with their context fit a quarter of the whole pass: tiles of 40 (evened out
    # over the 70-pixel side: two of 35).
    side = budget_tile(memory, 50, 70, 4, memory.bytes(48, 48))
    assert side == 35 and memory.bytes(side + 8, side + 8) <= memory.bytes(48, 48)
    with torch.inference_mode():
        expected_whole = net(lr)
        expected_tiled = tiled_forward(net, lr, 1, side, 4)
        for budget, expected in (
            (whole / 2**30, expected_whole),
            (48 * 48 * 64 / 2**30, expected_tiled),
        ):
            got = make_predictor(net, 1, "auto", 4, memory_budget_gb=budget)(lr)
            assert torch.equal(got, expected)


def test_auto_tile_says_when_no_tile_fits_the_budget() -> None:
    with pytest.raises(ConfigError, match="raise inference.memory_budget_gb or lower"):
        budget_tile(ForwardMemory(fixed=0.0, per_pixel=64), 50, 70, 4, 64 * 8 * 8)


def test_bf16_batches_and_ensemble_agree_with_fp32(tmp_path: Path) -> None:
    weights = edsr_baseline_weights(tmp_path, num_feat=8, num_block=2)
    source = tmp_path / "in"
    source.mkdir()
    for name in ("a", "b", "c"):  # a and c share a size, b does not
        Image.fromarray(smooth(12, 16 if name != "b" else 14, 3)).save(source / f"{name}.png")
    net_overrides = [
        "model=edsr_baseline",
        f"ckpt_path={weights}",
        "model.net.num_feat=8",
        "model.net.num_block=2",
    ]
    results = {}
    for run, extra in {
        "fp32": [],
        "bf16": ["inference.precision=bf16"],
        "batch": ["inference.batch=3"],
        "ensemble": ["inference.self_ensemble=true"],
    }.items():
        out = tmp_path / run
        report = infer(
            compose_config(
                out / "run",
                [
                    "scale=2",
                    f"input={source}",
                    f"output={out}",
                    "progress=false",
                    *net_overrides,
                    *extra,
                ],
                config_name="infer",
            )
        )
        assert report.ok and len(report.written) == 3, run
        results[run] = {p.name: np.asarray(Image.open(p), dtype=int) for p in report.written}
    for name, fp32 in results["fp32"].items():
        assert np.abs(results["batch"][name] - fp32).max() <= 1, name
        assert np.abs(results["bf16"][name] - fp32).max() <= 8, name  # bf16: 8 bits of mantissa
        assert np.abs(results["ensemble"][name] - fp32).max() > 0, name  # it did something


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(smooth(6, 10, 3))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image.save(tmp_path / "phone.jpg", exif=exif)
    report = infer(infer_cfg(tmp_path, tmp_path / "phone.jpg", "model=bicubic"))
    assert Image.open(report.written[0]).size == (12, 20)  # upright: 6 wide, 10 high, x2


def test_inputs_globs_and_refused_outputs(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    for name in ("a/x.png", "a/x.jpg", "a/y.webp", ".hidden.png", "a/._sidecar.png"):
        Image.fromarray(smooth(4, 4, 3)).save(root / name)
    base, files = find_inputs(str(root))
    assert base == root and [f.relative_to(root).as_posix() for f in files] == [
        "a/x.jpg",
        "a/x.png",
        "a/y.webp",
    ]
    base, files = find_inputs(str(root / "**" / "x.*"))
    assert base == root and [f.name for f in files] == ["x.jpg", "x.png"]
    with pytest.raises(ConfigError, match="no image files"):
        find_inputs(str(root), recursive=False)  # only the hidden file at the top
    jobs, refused = plan_jobs(root, files, root, "png")
    assert [j.target for j in jobs] == [root / "a" / "x.png"]  # x.jpg -> x.png, first wins
    assert [(p.name, "overwrite" in why) for p, why in refused] == [("x.png", True)]
    with pytest.raises(ConfigError, match="no such file or folder"):
        find_inputs(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no image files"):
        find_inputs(str(root / "*.tif"))


def test_output_folder_inside_input_is_not_read_back(tmp_path: Path) -> None:
    Image.fromarray(smooth(4, 5, 3)).save(tmp_path / "p.png")
    for _ in range(2):  # the second run must not upscale the first run's output
        report = infer(
            compose_config(
                tmp_path / "run",
                [
                    "model=bicubic",
                    "scale=2",
                    f"input={tmp_path}",
                    f"output={tmp_path / 'sr'}",
                    "progress=false",
                    "skip_existing=true",
                ],
                config_name="infer",
            )
        )
    assert report.written == [] and report.skipped == [tmp_path / "p.png"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["inference.precision=16", "inference.device=cpu"], "needs a CUDA device"),
        (["format=gif"], "format='gif'"),
        (["inference.tile=-8"], "tile=-8"),
        (["inference.tile=big"], "must be an int or auto or null"),
        (["model=edsr_baseline"], "has weights to learn"),
    ],
)
def test_config_errors_say_how_to_fix(tmp_path: Path, overrides: list[str], message: str) -> None:
    Image.fromarray(smooth(4, 5, 3)).save(tmp_path / "p.png")
    with pytest.raises(ConfigError, match=message):
        infer(infer_cfg(tmp_path, tmp_path / "p.png", *overrides))


def test_missing_input_is_a_config_error(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["progress=false"], config_name="infer")
    with pytest.raises(ConfigError, match="input=<image file, folder or glob>"):
        infer(cfg)


# -- 16-bit files, read and written by OpenCV (srlab.imaging.io) ---------------------------


def naive_png16(array: np.ndarray, filters: list[int]) -> bytes:
    """A 16-bit PNG whose rows cycle through ``filters``, filtered byte by byte (the spec's
    pseudo-code, no vectorization): an encoder independent of the one srlab reads with."""
    height, width, channels = array.shape
    data = array.astype(">u2").view(np.uint8).reshape(height, -1).astype(int)
    bpp, out = channels * 2, b""
    for y in range(height):
        kind = filters[y % len(filters)]
        row = [kind]
        for x in range(data.shape[1]):
            a = data[y, x - bpp] if x >= bpp else 0
            b = data[y - 1, x] if y else 0
            c = data[y - 1, x - bpp] if y and x >= bpp else 0
            p = a + b - c
            paeth = (
                a
                if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c)
                else (b if abs(p - b) <= abs(p - c) else c)
            )
            row.append((data[y, x] - [0, a, b, (a + b) // 2, paeth][kind]) % 256)
        out += bytes(row)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    colour = {2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(out))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("filters", [[0, 1, 2, 3, 4], [1, 2, 0]])
def test_png16_reader_undoes_every_filter(
    tmp_path: Path, channels: int, filters: list[int]
) -> None:
    array = RNG.integers(0, 65536, size=(7, 5, channels), dtype=np.uint16)
    path = tmp_path / "x.png"
    path.write_bytes(naive_png16(array, filters))
    decoded = read_full(path)
    np.testing.assert_array_equal(decoded.array, array)  # gray + alpha stays 2 channels
    assert decoded.icc_profile is None
    assert load_image(path).bits == 16


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_files_round_trip_exactly_and_pillow_reads_them(tmp_path: Path, suffix: str) -> None:
    for channels in (1, 2, 3, 4):
        array = RNG.integers(0, 65536, size=(6, 9, channels), dtype=np.uint16)
        path = tmp_path / f"w{channels}{suffix}"
        notes = write_image(path, array, icc_profile=SRGB)
        decoded = read_full(path)
        # OpenCV has no 16-bit gray + alpha: it is written (and read back) as RGBA.
        want = array[..., [0, 0, 0, 1]] if channels == 2 else array
        np.testing.assert_array_equal(decoded.array, want)
        assert (channels == 2) == any("16-bit RGBA" in note for note in notes)
        if suffix == ".png":
            assert decoded.icc_profile == SRGB
        else:
            assert decoded.icc_profile is None and any("no ICC profile" in n for n in notes)
        with Image.open(path) as image:
            image.load()  # an independent decoder accepts it
            if channels == 1:
                np.testing.assert_array_equal(np.asarray(image), array[..., 0])
            elif channels == 3:
                np.testing.assert_array_equal(np.asarray(image), array >> 8)  # high bytes


def test_16bit_for_8bit_formats_is_rounded_with_a_note(tmp_path: Path) -> None:
    array = RNG.integers(0, 65536, size=(6, 9, 4), dtype=np.uint16)
    notes = write_image(tmp_path / "w.webp", array, quality=100)
    assert any("holds 8 bits" in note for note in notes)
    notes = write_image(tmp_path / "w.jpg", array)
    assert any("no alpha" in note for note in notes)
    assert read_full(tmp_path / "w.jpg").array.shape == (6, 9, 3)


def test_corrupt_png16_is_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "w.png", RNG.integers(0, 65536, size=(6, 9, 3), dtype=np.uint16))
    data = bytearray((tmp_path / "w.png").read_bytes())
    data[60] ^= 0xFF  # inside the image data: its checksum no longer matches
    (tmp_path / "w.png").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="w.png.*checksum"):
        load_image(tmp_path / "w.png")
    (tmp_path / "w.png").write_bytes(bytes(data[:70]))
    with pytest.raises(ImageReadError, match="w.png.*[Tt]runcated"):
        load_image(tmp_path / "w.png")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_orientation_matches_pillows_exif_transpose(tmp_path: Path, orientation: int) -> None:
    from srlab.imaging.io import _orient

    array = smooth(6, 10, 3)
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as opened:
        want = np.asarray(ImageOps.exif_transpose(opened))
    np.testing.assert_array_equal(_orient(array, orientation), want)
    np.testing.assert_array_equal(read_full(tmp_path / "o.png").array, want)


def test_decompression_bomb_is_an_image_read_error(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(smooth(40, 50, 3)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 2000 pixels is over twice the limit
    with pytest.raises(ImageReadError, match="big.png.*decompression bomb"):
        load_image(tmp_path / "big.png")

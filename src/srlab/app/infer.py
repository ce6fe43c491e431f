"""Super-resolve image files: the library behind ``src/infer.py``.

``python src/infer.py model=edsr_baseline ckpt=<weights> input=<file|folder|glob> output=<dir>``
reads every image, runs the network on it (whole, tiled, or as the x8 self-ensemble; in fp32,
bf16 or fp16; several images of one size per batch) and writes ``<output>/<name><suffix>.<ext>``,
keeping the folder structure of a folder input. Everything here is a plain function of its
arguments, so tests drive it in-process; only the entry point turns failures into an exit code.

What a file keeps through the round trip:

* **Channels**: grayscale stays grayscale, RGB stays RGB (:func:`srlab.models.channels.
  super_resolve` adapts them to the network's own channels). An alpha channel is not shown to
  the network: it is upscaled on its own with MATLAB bicubic (:func:`srlab.imaging.imresize`)
  and re-attached.
* **Bit depth**: a 16-bit image runs through the network as ``value / 65535`` floats and is
  written as a 16-bit PNG. Pillow reads 16-bit grayscale but silently drops the low byte of
  16-bit colour PNGs, so those (and 16-bit colour+alpha, grayscale+alpha) are decoded by the
  small PNG codec below; 16-bit colour TIFFs are read with ``tifffile``.
* **Orientation and colour profile**: an EXIF orientation is applied on reading (the output
  carries no orientation tag, so it must be upright), and an ICC profile is copied to the
  output.

A file that cannot be read (or written) is reported with its reason and skipped; the others
are still processed, and :class:`InferenceReport` lists what failed.
"""

from __future__ import annotations

import glob
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageOps, UnidentifiedImageError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn

from srlab.app.evaluate import build_net
from srlab.data.io import IMAGE_EXTENSIONS, is_image_file
from srlab.errors import ConfigError, ImageReadError
from srlab.imaging import imresize, self_ensemble, tiled_forward
from srlab.models.channels import super_resolve

log = logging.getLogger(__name__)

Predictor = Callable[[torch.Tensor], torch.Tensor]

#: Output formats and the file extension each is written with.
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
_FORMAT_ALIASES = {"jpeg": "jpg"}
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}

#: ``precision`` values and the autocast dtype each runs the network in (None: plain fp32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None,
    "32-true": None,
    "bf16": torch.bfloat16,
    "bf16-mixed": torch.bfloat16,
    "16": torch.float16,
    "16-mixed": torch.float16,
}


# -- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceOptions:
    """How images are super-resolved and written (the keys of ``conf/infer.yaml``).

    Args:
        scale: the upscaling factor; the network must upsample by it.
        tile: LR tile side in pixels (None: whole images). Bounds memory on large images.
            ``from_config`` reads ``tile=0`` as None, as other SR tools do.
        tile_overlap: LR pixels of context around each tile; at least the network's
            receptive field radius makes tiled output equal untiled output.
        self_ensemble: average the 8 flips/transpositions (EDSR's "+"; 8x slower).
        precision: ``32``, ``bf16`` (CPU or CUDA) or ``16`` (CUDA only), as autocast.
        batch: images per forward pass; only images of one size and channel count share one.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        format: output format: ``png``, ``jpg`` or ``webp``.
        quality: JPEG / WebP quality, 1-100.
        suffix: appended to each output's file stem (``baby`` -> ``baby_x4.png``).
        recursive: look for images in the subfolders of a folder input too.
        skip_existing: leave outputs that already exist alone (resume an interrupted run).
        progress: show a progress bar.
    """

    scale: int
    tile: int | None = None
    tile_overlap: int = 32
    self_ensemble: bool = False
    precision: str = "32"
    batch: int = 1
    device: str = "auto"
    format: str = "png"
    quality: int = 95
    suffix: str = ""
    recursive: bool = True
    skip_existing: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        # Normalise the forms a command line produces (precision=32 is an int, format=JPG).
        object.__setattr__(self, "precision", str(self.precision).lower())
        fmt = str(self.format).lower().lstrip(".")
        object.__setattr__(self, "format", _FORMAT_ALIASES.get(fmt, fmt))
        if self.format not in FORMATS:
            raise ConfigError(f"format={self.format!r}: use one of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: use 32, bf16 or 16 (CUDA only)")
        if self.tile is not None and self.tile <= 0:
            raise ConfigError(f"tile={self.tile}: give a tile side > 0 in LR pixels, or 0 / null")
        if self.tile_overlap < 0:
            raise ConfigError(f"tile_overlap={self.tile_overlap}: must be >= 0")
        if self.batch < 1:
            raise ConfigError(f"batch={self.batch}: must be >= 1")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality={self.quality}: must be within 1-100")
        if "/" in self.suffix or os.sep in self.suffix:
            raise ConfigError(f"suffix={self.suffix!r}: a file-name suffix cannot hold '/'")

    @classmethod
    def from_config(cls, cfg: DictConfig) -> InferenceOptions:
        """The options of an ``infer`` config (``conf/infer.yaml``)."""
        tile = cfg.get("tile")
        return cls(
            scale=int(cfg.scale),
            tile=int(tile) if tile else None,
            tile_overlap=int(cfg.tile_overlap),
            self_ensemble=bool(cfg.self_ensemble),
            precision=str(cfg.precision),
            batch=int(cfg.batch),
            device=str(cfg.device),
            format=str(cfg.format),
            quality=int(cfg.quality),
            suffix=str(cfg.suffix or ""),
            recursive=bool(cfg.recursive),
            skip_existing=bool(cfg.skip_existing),
            progress=bool(cfg.progress),
        )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other name as ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device={name!r}: {error}. Use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available here; use device=cpu")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32, no autocast).

    Raises:
        ConfigError: fp16 on a CPU, where PyTorch has no fast fp16 convolutions.
    """
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise ConfigError(
            f"precision={precision} (fp16) needs a CUDA device, but this runs on {device}: "
            "use precision=bf16 (fast on recent CPUs) or precision=32"
        )
    return dtype


# -- inputs and outputs ------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One image to super-resolve: where it is read from and where its result goes."""

    source: Path
    target: Path


def find_inputs(
    spec: str, recursive: bool = True, exclude: Path | None = None
) -> tuple[Path, list[Path]]:
    """The image files named by ``input=``: a file, a folder or a glob.

    Returns the folder that output paths are kept relative to, and the files, sorted. A
    folder contributes its image files (``srlab.data.io.IMAGE_EXTENSIONS``; with
    ``recursive``, those of its subfolders too); a glob (``photos/**/*.png``; ``**`` spans
    folders) contributes the image files it matches, relative to its leading folder. Names
    starting with ``.`` are skipped (macOS ``._photo.jpg`` sidecars are not images), and so is
    everything under ``exclude`` (the output folder, when it lies inside the input folder, so
    that a second run does not upscale the first run's results).

    Raises:
        ConfigError: the input does not exist or names no image.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        base, candidates = path, path.rglob("*") if recursive else path.iterdir()
        where = f"{path}{' or its subfolders' if recursive else ''}"
    elif any(char in spec for char in "*?["):
        parts = Path(os.path.expanduser(spec)).parts
        fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        base = Path(*parts[:fixed]) if fixed else Path(".")
        candidates = (Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
        where = f"the files matching {spec}"
    else:
        raise ConfigError(
            f"input={spec}: no such file or folder. Give an image, a folder of images or a "
            "glob such as 'photos/**/*.png' (quoted)"
        )
    excluded = exclude.resolve() if exclude is not None else None
    files = sorted(
        p
        for p in candidates
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(base).parts)
        and not (excluded is not None and p.resolve().is_relative_to(excluded))
    )
    if not files:
        raise ConfigError(f"input={spec}: no image files ({' '.join(IMAGE_EXTENSIONS)}) in {where}")
    return base, files


def plan_jobs(
    base: Path, files: Iterable[Path], output_dir: Path, fmt: str, suffix: str = ""
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Pair each input with its output path, keeping its folder relative to ``base``.

    ``<base>/a/b.jpg`` becomes ``<output_dir>/a/b<suffix>.<fmt>``. Returns the jobs, and
    the inputs refused with the reason: one whose output would overwrite the input itself, or
    the output of an earlier input (``b.jpg`` and ``b.png`` in one folder).
    """
    extension = FORMATS[fmt]
    jobs: list[Job] = []
    refused: list[tuple[Path, str]] = []
    owners: dict[Path, Path] = {}
    for source in files:
        relative = source.relative_to(base)
        target = output_dir / relative.parent / f"{relative.stem}{suffix}{extension}"
        key = target.resolve()
        if key == source.resolve():
            reason = f"its output {target} would overwrite it: use another output= or a suffix="
        elif key in owners:
            reason = (
                f"its output {target} is also the output of {owners[key]}: rename one of them, "
                "or run them separately"
            )
        else:
            owners[key] = source
            jobs.append(Job(source, target))
            continue
        refused.append((source, reason))
    return jobs, refused


def group_jobs(jobs: Sequence[Job], batch: int) -> list[list[Job]]:
    """Jobs in groups of at most ``batch`` whose images (probably) share size and channels.

    Sizes come from the file headers (cheap: nothing is decoded). Groups keep the order in
    which their first image appears. A file whose header cannot be read gets a group of its
    own, so that loading it reports the error. The header can still mislead (an EXIF rotation
    swaps width and height), so :func:`run_jobs` checks the decoded images again.
    """
    if batch == 1:
        return [[job] for job in jobs]
    by_key: dict[Any, list[Job]] = {}
    for index, job in enumerate(jobs):
        by_key.setdefault(_peek_shape(job.source) or ("unreadable", index), []).append(job)
    return [same[i : i + batch] for same in by_key.values() for i in range(0, len(same), batch)]


def _peek_shape(path: Path) -> tuple[int, int, int] | None:
    try:
        with Image.open(path) as image:
            gray = image.mode in ("1", "L", "LA", "La", "I", "F") or image.mode.startswith("I;16")
            return image.size[0], image.size[1], 1 if gray else 3
    except Exception:  # any failure is reported by load_image, which reads the file for real
        return None


# -- reading -----------------------------------------------------------------------------


@dataclass
class LoadedImage:
    """An image as inference sees it.

    Attributes:
        pixels: colour ``[C, H, W]`` float32 in ``[0, 1]``, C = 1 (grayscale) or 3 (RGB).
        alpha: opacity ``[1, H, W]`` float32 in ``[0, 1]``, or None.
        bits: 8 or 16, the bit depth the image came with (and is written with).
        icc_profile: the embedded ICC colour profile, copied to the output.
    """

    pixels: torch.Tensor
    alpha: torch.Tensor | None = None
    bits: int = 8
    icc_profile: bytes | None = None

    @classmethod
    def from_array(
        cls, array: np.ndarray, bits: int, icc_profile: bytes | None = None
    ) -> LoadedImage:
        """From an ``[H, W, C]`` uint8/uint16 array, C = 1 (L), 2 (LA), 3 (RGB), 4 (RGBA)."""
        scaled = torch.from_numpy(array.astype(np.float32) / (65535.0 if bits == 16 else 255.0))
        planes = scaled.permute(2, 0, 1)
        has_alpha = planes.shape[0] in (2, 4)
        colour = planes[:-1] if has_alpha else planes
        alpha = planes[-1:] if has_alpha else None
        return cls(
            colour.contiguous(), None if alpha is None else alpha.contiguous(), bits, icc_profile
        )


class UnreadableImageError(ImageReadError):
    """An input image that cannot be read; ``reason`` says why without repeating the path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path}: {reason}. Replace or remove the file")


def load_image(path: str | Path) -> LoadedImage:
    """Read an image file for inference, keeping alpha and 16-bit depth.

    Raises:
        UnreadableImageError: (an :class:`~srlab.errors.ImageReadError`) the file is missing,
            truncated, corrupt or not a supported image; the message names the file and why.
    """
    path = Path(path)
    try:
        return _load(path)
    except UnidentifiedImageError:
        raise UnreadableImageError(
            path, "not an image, or in a format Pillow cannot read"
        ) from None
    except FileNotFoundError:
        raise UnreadableImageError(path, "the file does not exist (any more)") from None
    except (
        OSError,  # includes PIL's "image file is truncated"
        SyntaxError,  # PIL's "broken PNG file"
        ValueError,
        EOFError,
        zlib.error,
        struct.error,
        Image.DecompressionBombError,
    ) as error:
        raise UnreadableImageError(path, str(error) or type(error).__name__) from error


def _load(path: Path) -> LoadedImage:
    with Image.open(path) as image:
        icc = image.info.get("icc_profile")
        if image.format == "PNG" and _png_is_16bit_colour(path):
            array, icc = read_png16(path)
            return LoadedImage.from_array(array, 16, icc)
        if image.format == "TIFF" and image.mode in ("RGB", "RGBA") and _tiff_is_16bit(path):
            return LoadedImage.from_array(_read_tiff16(path), 16, icc)
        image.load()
        upright = ImageOps.exif_transpose(image)  # phone photos: store raw, display rotated
        return _from_pillow(upright, path, icc)


def _from_pillow(image: Image.Image, path: Path, icc: bytes | None) -> LoadedImage:
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale (Pillow opens 16-bit gray PNG/TIFF as one of these; "I" is 32-bit
        # integer storage holding 16-bit values).
        values = np.asarray(image, dtype=np.int64)
        return LoadedImage.from_array(
            np.clip(values, 0, 65535).astype(np.uint16)[..., None], 16, icc
        )
    if mode == "F":
        raise ValueError(f"{path.name} is a 32-bit floating-point image: save it as 8 or 16 bit")
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        mode == "P" and "transparency" in image.info
    )
    gray = mode in ("1", "L", "LA", "La")
    target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
    array = np.asarray(image.convert(target) if mode != target else image, dtype=np.uint8)
    return LoadedImage.from_array(array[..., None] if array.ndim == 2 else array, 8, icc)


def _tiff_is_16bit(path: Path) -> bool:
    import tifffile  # a dependency of scikit-image; imported here, TIFFs are rare

    with tifffile.TiffFile(path) as tiff:
        return tiff.pages[0].dtype == np.uint16


def _read_tiff16(path: Path) -> np.ndarray:
    import tifffile

    array = tifffile.imread(path, key=0)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"unsupported 16-bit TIFF layout {array.shape}: expected [H, W, 3|4]")
    return array


# -- 16-bit PNG codec --------------------------------------------------------------------
#
# Pillow reads 16-bit grayscale PNGs but keeps only the high byte of 16-bit RGB, RGBA and
# gray+alpha ones, and cannot write any of them; this codec covers exactly that gap
# (non-interlaced files, per the PNG specification, https://www.w3.org/TR/png/).

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_PNG_COLOUR_TYPES = {channels: kind for kind, channels in _PNG_CHANNELS.items()}


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as file:
        head = file.read(33)
    # IHDR is always the first chunk: bytes 24 and 25 are its bit depth and colour type.
    return len(head) == 33 and head[24] == 16 and head[25] in (2, 4, 6)


def read_png16(path: str | Path) -> tuple[np.ndarray, bytes | None]:
    """Decode a 16-bit PNG into a uint16 ``[H, W, C]`` array and its ICC profile (or None).

    Raises:
        ValueError: not a 16-bit non-interlaced PNG, or a corrupt one (bad CRC, truncated).
    """
    data = Path(path).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    header, idat, icc, pos = None, [], None, len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"PNG truncated in its {kind.decode(errors='replace')} chunk")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"PNG chunk {kind.decode(errors='replace')} fails its CRC: corrupt")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"iCCP":
            name_end = body.index(b"\0")
            icc = zlib.decompress(body[name_end + 2 :])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        raise ValueError("PNG without IHDR or image data")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 16 or colour_type not in _PNG_CHANNELS:
        raise ValueError(f"expected a 16-bit PNG, got bit depth {depth}, colour type {colour_type}")
    if interlace:
        raise ValueError("Adam7-interlaced 16-bit PNGs are not supported: save it non-interlaced")
    channels = _PNG_CHANNELS[colour_type]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    row_bytes = 1 + width * channels * 2
    if raw.size < height * row_bytes:
        raise ValueError(f"PNG image data truncated: {raw.size} of {height * row_bytes} bytes")
    rows = raw[: height * row_bytes].reshape(height, row_bytes)
    pixels = _unfilter(rows, height, width, channels * 2)
    samples = pixels.reshape(height, width, channels, 2).astype(np.uint16)
    return (samples[..., 0] << 8) | samples[..., 1], icc  # big-endian samples


def _unfilter(rows: np.ndarray, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters; ``rows`` is ``[H, 1 + W*bpp]`` with the filter byte first.

    Filters predict each byte from its left (a), upper (b) and upper-left (c) neighbours. None,
    Sub and Up reconstruct a whole row at once (Sub is a running sum along the row). Average
    and Paeth need the reconstructed left neighbour, a chain along the row; but a pixel only
    depends on pixels above or to its left, so all pixels of one anti-diagonal are
    independent and are reconstructed together: H + W vectorized steps instead of H * W.
    """
    filters = rows[:, 0]
    if filters.max(initial=0) > 4:
        raise ValueError(f"PNG uses unknown filter type {int(filters.max())}: corrupt")
    raw = rows[:, 1:].reshape(height, width, bpp)
    if filters.max(initial=0) <= 2:
        out = np.empty_like(raw)
        for r in range(height):
            if filters[r] == 1:
                np.cumsum(raw[r], axis=0, dtype=np.uint8, out=out[r])  # wraps mod 256
            elif filters[r] == 2 and r > 0:
                np.add(raw[r], out[r - 1], out=out[r])
            else:
                out[r] = raw[r]
        return out
    raw16 = raw.astype(np.int16)
    out16 = np.zeros((height + 1, width + 1, bpp), np.int16)  # zero row/column: "outside"
    zeros = np.zeros((min(height, width), bpp), np.int16)
    for diagonal in range(height + width - 1):
        r = np.arange(max(0, diagonal - width + 1), min(height - 1, diagonal) + 1)
        c = diagonal - r
        left, up, up_left = out16[r + 1, c], out16[r, c + 1], out16[r, c]
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        choices = (zeros[: r.size], left, up, (left + up) >> 1, paeth)
        prediction = np.choose(filters[r][:, None], choices)
        out16[r + 1, c + 1] = (raw16[r, c] + prediction) & 255
    return out16[1:, 1:].astype(np.uint8)


def write_png16(path: str | Path, array: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Write a uint16 ``[H, W, C]`` array (C = 1, 2, 3, 4) as a 16-bit PNG.

    Every row uses the Sub filter (difference to the pixel on the left), which compresses
    photos far better than no filter and costs one vectorized subtraction.
    """
    height, width, channels = array.shape
    bpp = channels * 2
    samples = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(height, -1)
    rows = np.empty((height, 1 + width * bpp), np.uint8)
    rows[:, 0] = 1  # Sub
    rows[:, 1 : 1 + bpp] = samples[:, :bpp]
    np.subtract(samples[:, bpp:], samples[:, :-bpp], out=rows[:, 1 + bpp :])  # wraps mod 256
    compressed = zlib.compress(memoryview(rows).cast("B"), 6)
    header = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    with open(path, "wb") as file:
        file.write(_PNG_SIGNATURE)
        _write_chunk(file, b"IHDR", header)
        if icc_profile:
            _write_chunk(file, b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
        step = 1 << 23  # 8 MiB IDAT chunks, as encoders commonly split them
        for start in range(0, len(compressed), step):
            _write_chunk(file, b"IDAT", compressed[start : start + step])
        _write_chunk(file, b"IEND", b"")


def _write_chunk(file: Any, kind: bytes, body: bytes) -> None:
    file.write(struct.pack(">I", len(body)) + kind)
    file.write(body)
    file.write(struct.pack(">I", zlib.crc32(kind + body)))


# -- upscaling ---------------------------------------------------------------------------


def make_predictor(
    net: nn.Module,
    scale: int,
    tile: int | None = None,
    tile_overlap: int = 32,
    ensemble: bool = False,
    dtype: torch.dtype | None = None,
) -> Predictor:
    """LR ``[B, C, h, w]`` -> SR ``[B, C, s*h, s*w]`` float32, unclamped, for images of any size.

    ``dtype`` (bf16/fp16) runs the network under autocast; every tile's output is cast back
    to float32 before it is stitched, so the full-size result never holds low-precision values
    (bf16 keeps 8 significant bits: too few for a 16-bit image).
    """

    def forward(lr: torch.Tensor) -> torch.Tensor:
        with torch.autocast(lr.device.type, dtype=dtype, enabled=dtype is not None):
            sr = super_resolve(net, lr)
        return sr.float()

    def tiled(lr: torch.Tensor) -> torch.Tensor:
        return tiled_forward(forward, lr, scale, tile, tile_overlap)

    single = tiled if tile else forward
    return (lambda lr: self_ensemble(single, lr)) if ensemble else single


def upscale_images(
    predict: Predictor, images: Sequence[LoadedImage], scale: int, device: torch.device
) -> list[LoadedImage]:
    """Super-resolve images of one size in one batch; returns them clamped to ``[0, 1]``.

    The colour goes through ``predict``; an alpha channel is upscaled by MATLAB bicubic on
    its own (a network trained on photos has no business inventing opacity).
    """
    with torch.no_grad():
        lr = torch.stack([image.pixels for image in images]).to(device)
        sr = predict(lr).clamp_(0, 1).cpu()
        del lr
        results = []
        for index, image in enumerate(images):
            alpha = None
            if image.alpha is not None:
                size = (image.alpha.shape[1] * scale, image.alpha.shape[2] * scale)
                alpha = imresize(image.alpha, size=size).clamp_(0, 1)
            results.append(LoadedImage(sr[index], alpha, image.bits, image.icc_profile))
    return results


# -- writing -----------------------------------------------------------------------------


def to_array(image: LoadedImage, bits: int) -> np.ndarray:
    """``image`` as an ``[H, W, C]`` uint8 (bits 8) or uint16 (bits 16) array, alpha last.

    Quantizes one channel at a time: for an 8160x5376 result a float copy of all channels
    would be another 0.5 GB.
    """
    planes = [image.pixels[c] for c in range(image.pixels.shape[0])]
    if image.alpha is not None:
        planes.append(image.alpha[0])
    height, width = planes[0].shape
    levels = 65535.0 if bits == 16 else 255.0
    array = np.empty((height, width, len(planes)), np.uint16 if bits == 16 else np.uint8)
    for index, plane in enumerate(planes):
        array[..., index] = plane.clamp(0, 1).mul_(levels).round_().numpy()
    return array


def save_image(image: LoadedImage, path: Path, fmt: str = "png", quality: int = 95) -> list[str]:
    """Write ``image`` to ``path`` in ``fmt``; returns notes on what the format could not keep.

    16-bit images become 16-bit PNGs; JPEG and WebP hold 8 bits, JPEG has no alpha and WebP
    no grayscale (it stores gray as RGB), and the notes say so. The file is written under a
    temporary name and renamed, so an interrupted run never leaves a truncated image that a
    later ``skip_existing=true`` run would take for a finished one.
    """
    notes = []
    bits = image.bits
    if bits == 16 and fmt != "png":
        notes.append(
            f"format={fmt} holds 8 bits per sample: 16-bit results are saved as 8-bit "
            "(use format=png to keep 16 bits)"
        )
        bits = 8
    if image.alpha is not None and fmt == "jpg":
        notes.append("JPEG has no alpha channel: alpha is dropped (use format=png or webp)")
        image = LoadedImage(image.pixels, None, image.bits, image.icc_profile)
    if fmt == "webp" and image.pixels.shape[0] == 1:
        notes.append("WebP has no grayscale mode: grayscale results are stored as RGB")
    array = to_array(image, bits)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        if bits == 16:
            write_png16(partial, array, image.icc_profile)
        else:
            options: dict[str, Any] = {}
            if fmt in ("jpg", "webp"):
                options["quality"] = quality
            if fmt == "jpg":
                options["subsampling"] = 0  # 4:4:4: halving chroma would undo the SR detail
            if image.icc_profile:
                options["icc_profile"] = image.icc_profile
            pil = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
            pil.save(partial, format=_PIL_FORMATS[fmt], **options)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return notes


# -- running -----------------------------------------------------------------------------


@dataclass
class InferenceReport:
    """What a run did: the outputs written, the inputs skipped and those that failed."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed


def run_jobs(
    jobs: Sequence[Job],
    predict: Predictor,
    options: InferenceOptions,
    device: torch.device,
    report: InferenceReport | None = None,
) -> InferenceReport:
    """Super-resolve and write every job; a file that fails is recorded and skipped."""
    report = report or InferenceReport()
    start, notes_seen = time.perf_counter(), set()
    pending = []
    for job in jobs:
        if options.skip_existing and job.target.exists():
            report.skipped.append(job.source)
        else:
            pending.append(job)
    columns = (
        TextColumn("[bold]upscaling x{task.fields[scale]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[name]}"),
    )
    with Progress(*columns, disable=not options.progress) as progress:
        task = progress.add_task("", total=len(pending), scale=options.scale, name="")

        def fail(job: Job, reason: str) -> None:
            report.failed.append((job.source, reason))
            progress.console.print(f"[red]failed[/red] {job.source}: {reason}", soft_wrap=True)
            progress.advance(task)

        for group in group_jobs(pending, options.batch):
            progress.update(task, name=group[0].source.name)
            loaded: list[tuple[Job, LoadedImage]] = []
            for job in group:
                try:
                    loaded.append((job, load_image(job.source)))
                except UnreadableImageError as error:
                    fail(job, f"unreadable: {error.reason}")
            for same in _same_shape(loaded):
                try:
                    results = upscale_images(
                        predict, [image for _, image in same], options.scale, device
                    )
                except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as error:
                    # Only running out of memory is this image's fault (too large for the
                    # settings); any other RuntimeError is a bug and must surface.
                    if isinstance(error, RuntimeError) and not _is_out_of_memory(error):
                        raise
                    for job, _ in same:
                        fail(
                            job,
                            f"out of memory ({_first_line(error)}): set tile=<LR "
                            "pixels> (e.g. tile=256), or a smaller batch",
                        )
                    continue
                for (job, _), result in zip(same, results, strict=True):
                    try:
                        notes = save_image(result, job.target, options.format, options.quality)
                    except (OSError, ValueError) as error:
                        fail(job, f"cannot write {job.target}: {error}")
                        continue
                    for note in set(notes) - notes_seen:
                        notes_seen.add(note)
                        log.warning("%s", note)
                    report.written.append(job.target)
                    report.megapixels += result.pixels.shape[1] * result.pixels.shape[2] / 1e6
                    progress.advance(task)
    report.seconds += time.perf_counter() - start
    return report


def _is_out_of_memory(error: BaseException) -> bool:
    # CUDA raises torch.cuda.OutOfMemoryError; the CPU allocator a RuntimeError saying so.
    return isinstance(error, torch.cuda.OutOfMemoryError | MemoryError) or (
        "can't allocate memory" in str(error) or "out of memory" in str(error).lower()
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _same_shape(
    loaded: list[tuple[Job, LoadedImage]],
) -> list[list[tuple[Job, LoadedImage]]]:
    groups: dict[tuple[int, ...], list[tuple[Job, LoadedImage]]] = {}
    for job, image in loaded:
        groups.setdefault(tuple(image.pixels.shape), []).append((job, image))
    return list(groups.values())


def infer(cfg: DictConfig) -> InferenceReport:
    """Super-resolve the images of ``cfg.input`` into ``cfg.output`` (``conf/infer.yaml``).

    Returns the report (failed files included); the entry point turns failures into a
    non-zero exit status. Config problems (no input, weights that do not fit) raise
    :class:`~srlab.errors.ConfigError` before any image is processed.
    """
    options = InferenceOptions.from_config(cfg)
    if OmegaConf.is_missing(cfg, "input") or not cfg.input:
        raise ConfigError("no images given: add input=<image file, folder or glob>")
    output_dir = Path(str(cfg.output)).expanduser()
    device = resolve_device(options.device)
    dtype = autocast_dtype(options.precision, device)
    base, files = find_inputs(str(cfg.input), options.recursive, exclude=output_dir)
    jobs, refused = plan_jobs(base, files, output_dir, options.format, options.suffix)
    net = build_net(cfg).to(device)
    if getattr(net, "upscale", options.scale) != options.scale:
        raise ConfigError(
            f"the network upsamples x{net.upscale} but scale={options.scale}: set scale="
            f"{net.upscale}, or give weights of a x{options.scale} network"
        )
    predict = make_predictor(
        net, options.scale, options.tile, options.tile_overlap, options.self_ensemble, dtype
    )
    report = InferenceReport(failed=list(refused))
    for source, reason in refused:
        log.error("skipped %s: %s", source, reason)
    run_jobs(jobs, predict, options, device, report)
    print_report(report, output_dir, len(files))
    return report


def print_report(report: InferenceReport, output_dir: Path, total: int) -> None:
    """Log the summary of a run: counts, speed, and every file that failed with its reason.

    Logged rather than printed, so that the run's ``infer.log`` keeps the list of failures.
    """
    speed = report.megapixels / report.seconds if report.seconds else 0.0
    summary = (
        f"{len(report.written)} of {total} images written to {output_dir} in "
        f"{report.seconds:.1f} s ({speed:.2f} output megapixels/s)"
    )
    if report.skipped:
        summary += f"; {len(report.skipped)} skipped (output exists, skip_existing=true)"
    log.info("%s", summary)
    if report.failed:
        lines = "".join(f"\n  {source}: {reason}" for source, reason in report.failed)
        log.error("%d file(s) failed:%s", len(report.failed), lines)

"""Reading and writing image files: the one place srlab decodes or encodes an image.

Two libraries, each for what it does well:

* **Pillow** (declared) opens every file first: it identifies the format from the header,
  refuses decompression bombs before any pixel is decoded, applies EXIF orientations, reads
  ICC profiles, says why a truncated or corrupt file fails, and decodes and encodes every
  8-bit image (PNG, JPEG, WebP, BMP, PPM, TIFF) and 16-bit grayscale.
* **OpenCV** (``opencv-python-headless``, declared, 4.13 or newer) decodes and encodes what
  Pillow cannot hold: 16-bit colour (RGB, RGBA, gray+alpha) PNG and TIFF. Pillow has no
  16-bit colour mode (it keeps only the high byte of each sample on reading and cannot
  write them), ``imageio`` reads PNG through Pillow too, and ``tifffile`` covers only TIFF
  (and needs ``imagecodecs`` for LZW, the common compression). OpenCV's wheels bundle libpng
  and libtiff, depend on numpy alone (no torch), and since 4.13 embed ICC profiles in PNG
  (``imencodeWithMetadata``). It is imported on first use: most runs never need it.

What a file keeps through :func:`read_full` and :func:`write_image`: channels (gray, gray +
alpha, RGB, RGBA), bit depth (8 or 16) and the ICC profile. Formats that cannot hold one of
them lose it with a note (JPEG: no alpha; JPEG/WebP: 8 bits; WebP: no gray; TIFF via OpenCV:
no ICC profile; 16-bit gray + alpha is written as 16-bit RGBA, which OpenCV can encode).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from srlab.errors import ImageReadError
from srlab.files import atomic_write

log = logging.getLogger(__name__)

#: The file extensions srlab reads as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

#: The formats :func:`write_image` writes, by file extension.
WRITE_FORMATS = {
    ".png": "png",
    ".jpg": "jpg",
    ".jpeg": "jpg",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
}
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "tiff": "TIFF"}
_SIXTEEN_BIT_FORMATS = ("png", "tiff")
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F")
_EXIF_ORIENTATION = 0x0112


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has one of the image extensions srlab reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


class UnreadableImageError(ImageReadError):
    """An image file that cannot be read; ``reason`` says why without repeating the path."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read image {path}: {reason}. Replace or remove the file")

    def __reduce__(self) -> tuple[Any, tuple[Path, str]]:
        return type(self), (self.path, self.reason)  # picklable across processes


@dataclass
class DecodedImage:
    """The pixels of an image file and its colour profile.

    Attributes:
        array: ``[H, W, C]`` uint8 or uint16, C = 1 (gray), 2 (gray + alpha), 3 (RGB) or
            4 (RGBA): alpha is always last.
        icc_profile: the embedded ICC colour profile, or None.
    """

    array: np.ndarray
    icc_profile: bytes | None = None

    @property
    def bits(self) -> int:
        """8 or 16."""
        return 16 if self.array.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        """Whether the last channel is opacity."""
        return self.array.shape[2] in (2, 4)


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: size and colour channels (1 gray, 3 colour), no alpha."""

    width: int
    height: int
    channels: int


# -- reading -----------------------------------------------------------------------------


def read_full(path: str | Path, orient: bool = True) -> DecodedImage:
    """Read an image file keeping its alpha channel, 16-bit depth and ICC profile.

    Args:
        path: the file.
        orient: apply the EXIF orientation (phone photos are stored sideways with a tag that
            says how to display them), so that the pixels are upright.

    Raises:
        UnreadableImageError: (an :class:`~srlab.errors.ImageReadError`) the file is missing,
            empty, truncated, corrupt, a decompression bomb or not a supported image; the
            message names the file and why.
    """
    path = Path(path)
    with _reasons(path):
        return _read(path, orient)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a writable uint8 array ``[H, W, C]``, C = 1 or 3 (datasets, scoring).

    Grayscale stays one channel (the literature scores it on that channel); an alpha channel
    is dropped with a warning; palette images become RGB; 16-bit images are scaled to 8 bits
    (``round(v / 257)``, which maps 65535 to 255). The EXIF orientation is not applied: LR
    and HR files of a dataset are paired as stored.

    Raises:
        UnreadableImageError: as :func:`read_full`.
    """
    image = read_full(path, orient=False)
    array = image.array
    if image.has_alpha:
        log.warning("%s has an alpha channel: it is dropped", path)
        array = array[..., :-1]
    if array.dtype == np.uint16:
        return to_uint8(array)
    return array if array.flags.writeable and array.flags.c_contiguous else array.copy()


def image_header(path: str | Path, verify: bool = False) -> ImageHeader:
    """The size and colour channels of an image file, from its header (nothing is decoded).

    Args:
        path: the file.
        verify: also walk the whole file to check its integrity (PNG chunk checksums, a
            truncated end) without decoding pixels: cheap, and it finds a broken file now
            rather than when it is first decoded.

    Raises:
        UnreadableImageError: the file is missing, empty, not an image, or (``verify``)
            truncated or corrupt.
    """
    path = Path(path)
    with _reasons(path), Image.open(path) as image:
        gray = image.mode in _GRAY_MODES or image.mode.startswith("I;16")
        header = ImageHeader(image.size[0], image.size[1], 1 if gray else 3)
        if verify:
            image.verify()
        return header


@contextmanager
def _reasons(path: Path) -> Iterator[None]:
    """Turn what decoding a bad file raises into an :class:`UnreadableImageError`."""
    try:
        yield
    except UnreadableImageError:
        raise
    except FileNotFoundError:
        raise UnreadableImageError(path, "the file does not exist (any more)") from None
    except UnidentifiedImageError:
        empty = path.is_file() and path.stat().st_size == 0
        reason = (
            "empty file (0 bytes)" if empty else "not an image, or in a format Pillow cannot read"
        )
        raise UnreadableImageError(path, reason) from None
    except (
        OSError,  # includes Pillow's "image file is truncated"
        SyntaxError,  # Pillow's "broken PNG file"
        ValueError,
        EOFError,
        struct.error,
        Image.DecompressionBombError,
    ) as error:
        raise UnreadableImageError(path, str(error) or type(error).__name__) from error


def _read(path: Path, orient: bool) -> DecodedImage:
    with Image.open(path) as image:
        icc = image.info.get("icc_profile") or None
        rawmode = _16bit_colour_rawmode(image)
        if rawmode is not None:
            orientation = _orientation(image) if orient else 1
            gray = rawmode.startswith("LA")
            if image.format == "PNG":
                image.verify()  # checksums and truncation, with Pillow's reasons
            array = _orient(_decode_16bit(path, image.size, gray), orientation)
            return DecodedImage(array, icc)
        image.load()
        if orient:
            image = ImageOps.exif_transpose(image)
        return DecodedImage(_pillow_array(image, path), icc)


def _16bit_colour_rawmode(image: Image.Image) -> str | None:
    """The raw mode of a 16-bit colour image (gray + alpha counts as colour), else None.

    Pillow opens 16-bit colour PNG/TIFF as RGB or RGBA (gray + alpha too) whose raw mode (how
    its decoder unpacks samples) reads 16 bits per sample: ``RGB;16B``, ``RGBA;16L``, ``LA;16B``.
    """
    if image.mode not in ("RGB", "RGBA", "LA") or not image.tile:
        return None
    args = image.tile[0][3]
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return rawmode if isinstance(rawmode, str) and ";16" in rawmode else None


def _decode_16bit(path: Path, size: tuple[int, int], gray: bool) -> np.ndarray:
    cv2 = _cv2()
    try:
        array = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ValueError(f"OpenCV cannot decode it ({error})") from None
    if array is None:
        raise ValueError("corrupt or truncated image data (OpenCV cannot decode it)")
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"unsupported 16-bit layout {array.dtype} {array.shape}")
    if (array.shape[1], array.shape[0]) != size:
        raise ValueError(f"decoded size {array.shape[1]}x{array.shape[0]} is not {size}")
    if gray:  # OpenCV expands gray + alpha to BGRA
        return np.ascontiguousarray(array[..., [0, 3]])
    return np.ascontiguousarray(array[..., [2, 1, 0, 3][: array.shape[2]]])  # BGR(A) -> RGB(A)


def _orientation(image: Image.Image) -> int:
    # A PNG may keep its EXIF after the image data, where Pillow reads it only by decoding the
    # image (which here would be wasted work); TIFF tags are in the header.
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(_EXIF_ORIENTATION, 1))


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` [H, W, C] displayed as EXIF ``orientation`` says (as ``exif_transpose``)."""
    transposed = array.transpose(1, 0, 2)
    upright = {
        2: lambda: array[:, ::-1],
        3: lambda: array[::-1, ::-1],
        4: lambda: array[::-1],
        5: lambda: transposed,
        6: lambda: transposed[:, ::-1],
        7: lambda: transposed[::-1, ::-1],
        8: lambda: transposed[::-1],
    }.get(orientation)
    return array if upright is None else np.ascontiguousarray(upright())


def _pillow_array(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale (Pillow opens 16-bit gray PNG/TIFF as one of these; "I" is 32-bit
        # integer storage holding 16-bit values).
        values = np.asarray(image, dtype=np.int64)
        return np.clip(values, 0, 65535).astype(np.uint16)[..., None]
    if mode == "F":
        raise ValueError(f"{path.name} is a 32-bit floating-point image: save it as 8 or 16 bit")
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        mode == "P" and "transparency" in image.info
    )
    gray = mode in ("1", "L", "LA", "La")
    target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
    array = np.asarray(image.convert(target) if mode != target else image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint16 samples as uint8, ``round(v / 257)`` (65535 -> 255); uint8 is returned as is."""
    if array.dtype == np.uint8:
        return array
    # round(v / 257) in integers: v / 257 is never exactly k + 0.5 (257 is odd).
    return ((array.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)


# -- writing -----------------------------------------------------------------------------


def write_image(
    path: str | Path,
    array: np.ndarray,
    quality: int = 95,
    icc_profile: bytes | None = None,
) -> list[str]:
    """Write ``array`` to ``path`` in the format of its extension; returns notes on what was lost.

    Args:
        path: ``.png``, ``.jpg``/``.jpeg``, ``.webp`` or ``.tif``/``.tiff``; its folder is made.
        array: ``[H, W]`` or ``[H, W, C]`` uint8 or uint16, C = 1, 2, 3 or 4 (alpha last).
            uint16 is written with 16 bits to PNG and TIFF, and scaled to 8 bits (with a note)
            for JPEG and WebP.
        quality: JPEG / WebP quality, 1-100. JPEG keeps full-resolution chroma (4:4:4):
            halving it would undo the detail super-resolution adds.
        icc_profile: an ICC colour profile to embed.

    The file is written under a temporary name and renamed, so an interrupted run never
    leaves a truncated image for a later run to take for a finished one, and processes
    writing the same file never mix their bytes.

    Raises:
        ValueError: an unknown extension or array layout.
        OSError: the file cannot be written.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot write {path.suffix!r} images, use one of {WRITE_FORMATS}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"cannot write an array of shape {array.shape} as an image")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"cannot write {array.dtype} samples: give uint8 or uint16")
    array, notes = _fit_format(array, fmt)
    with atomic_write(path) as partial:
        if array.dtype == np.uint16:
            data, lost = _encode_16bit(array, fmt, icc_profile)
            notes += lost
            partial.write_bytes(data)
        else:
            options: dict[str, Any] = {"quality": quality} if fmt in ("jpg", "webp") else {}
            if fmt == "jpg":
                options["subsampling"] = 0
            if fmt == "tiff":
                options["compression"] = "tiff_lzw"
            if icc_profile:
                options["icc_profile"] = icc_profile
            image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
            image.save(partial, format=_PIL_FORMATS[fmt], **options)
    return notes


def _fit_format(array: np.ndarray, fmt: str) -> tuple[np.ndarray, list[str]]:
    """``array`` made writable in ``fmt``, and notes on what that lost."""
    notes = []
    if array.dtype == np.uint16 and fmt not in _SIXTEEN_BIT_FORMATS:
        notes.append(
            f"format={fmt} holds 8 bits per sample: 16-bit results are saved as 8-bit "
            "(use format=png to keep 16 bits)"
        )
        array = to_uint8(array)
    if fmt == "jpg" and array.shape[2] in (2, 4):
        notes.append("JPEG has no alpha channel: alpha is dropped (use format=png or webp)")
        array = array[..., :-1]
    if fmt == "webp" and array.shape[2] in (1, 2):
        notes.append("WebP has no grayscale mode: grayscale results are stored as RGB")
    if array.dtype == np.uint16 and array.shape[2] == 2:
        notes.append(
            "16-bit grayscale with alpha is written as 16-bit RGBA (OpenCV, which writes "
            "srlab's 16-bit files, has no gray + alpha mode)"
        )
        array = array[..., [0, 0, 0, 1]]
    return array, notes


def _encode_16bit(array: np.ndarray, fmt: str, icc: bytes | None) -> tuple[bytes, list[str]]:
    cv2 = _cv2()
    bgr = array if array.shape[2] == 1 else array[..., [2, 1, 0, 3][: array.shape[2]]]
    bgr = np.ascontiguousarray(bgr)
    extension = ".png" if fmt == "png" else ".tiff"
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "png" else []
    notes = []
    if icc and fmt == "png":
        profile = [np.frombuffer(icc, np.uint8)]
        try:
            ok, data = cv2.imencodeWithMetadata(
                extension, bgr, [cv2.IMAGE_METADATA_ICCP], profile, params
            )
        except cv2.error:
            ok = False
        if ok:
            return data.tobytes(), notes
        notes.append("libpng refuses the image's ICC profile: the 16-bit output has none")
    elif icc:
        notes.append("16-bit TIFF output carries no ICC profile (use format=png to keep it)")
    try:
        ok, data = cv2.imencode(extension, bgr, params)
    except cv2.error as error:
        raise ValueError(f"OpenCV cannot encode a 16-bit {fmt}: {error}") from None
    if not ok:
        raise ValueError(f"OpenCV cannot encode a 16-bit {fmt} of shape {array.shape}")
    return data.tobytes(), notes


def _cv2() -> Any:
    import cv2  # 0.3 s to import; only 16-bit colour files need it

    return cv2

"""Reading images from disk as uint8 arrays with 1 (grayscale) or 3 (RGB) channels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from srlab.errors import ImageReadError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` has one of the image extensions srlab reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as a uint8 array of shape [H, W, C], C = 1 or 3.

    Grayscale stays one channel (the literature scores it on that channel); RGBA and
    LA drop their alpha channel with a warning; palette images become RGB; 16-bit
    images are scaled to 8 bits (``round(v / 257)``, which maps 65535 to 255).

    Raises:
        ImageReadError: the file is missing, truncated or not an image; the message names it.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_uint8_array(image, path)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ImageReadError(
            f"cannot read image {path}: {error}. Replace or remove the file "
            "(or check that the folder in the config holds only images)."
        ) from error


def _to_uint8_array(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        log.warning("%s has an alpha channel (mode %s): it is dropped", path, mode)
        image = image.convert("RGB" if mode != "LA" else "L")
        mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit integer) grayscale: scale the full 16-bit range onto 8 bits.
        array = np.asarray(image, dtype=np.float64)
        return np.clip(np.round(array / 257.0), 0, 255).astype(np.uint8)[..., None]
    if mode == "1":
        image = image.convert("L")
    elif mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.array(image, dtype=np.uint8)  # a writable copy, safe to hand to torch
    return array[..., None] if array.ndim == 2 else array

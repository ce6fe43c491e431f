"""MATLAB-compatible image operations (bicubic imresize, colour) and whole-image inference."""

from srlab.imaging.color import rgb_to_gray, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.imaging.imresize import imresize, modcrop
from srlab.imaging.tiling import self_ensemble, tiled_forward

__all__ = [
    "imresize",
    "modcrop",
    "rgb_to_gray",
    "self_ensemble",
    "tiled_forward",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]

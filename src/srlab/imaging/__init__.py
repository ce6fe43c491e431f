"""MATLAB-compatible image operations: bicubic imresize and colour conversion."""

from srlab.imaging.color import rgb_to_gray, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srlab.imaging.imresize import imresize, modcrop

__all__ = ["imresize", "modcrop", "rgb_to_gray", "rgb_to_y", "rgb_to_ycbcr", "ycbcr_to_rgb"]

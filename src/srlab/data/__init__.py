"""Datasets, the catalog of known image sets, and the LightningDataModule."""

from srlab.data.catalog import CATALOG, ImageSet, get_image_set
from srlab.data.datamodule import SRDataModule
from srlab.data.datasets import EvalDataset, ImagePair, PatchDataset, list_pairs, load_pair
from srlab.imaging.io import read_image

__all__ = [
    "CATALOG",
    "EvalDataset",
    "ImagePair",
    "ImageSet",
    "PatchDataset",
    "SRDataModule",
    "get_image_set",
    "list_pairs",
    "load_pair",
    "read_image",
]

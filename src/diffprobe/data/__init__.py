"""Data layer: image folders and manifests, preprocessing, splits, settings, synthetic data."""

from .dataset import ImageArray, load_images, to_model_input
from .io import ImageReadError, read_image
from .manifest import (Manifest, make_setting, open_dataset, prepare_split, read_ecotaxa_tsv, scan_folder,
                       split_manifest)
from .preprocess import Preprocess, preprocess

__all__ = ["ImageArray", "ImageReadError", "Manifest", "Preprocess", "load_images", "make_setting",
           "open_dataset", "prepare_split", "preprocess", "read_ecotaxa_tsv", "read_image", "scan_folder",
           "split_manifest", "to_model_input"]

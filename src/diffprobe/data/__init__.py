"""Data layer: image folders and manifests, preprocessing, splits, the objects' measurements, synthetic images, the
datasets diffprobe knows and the per-image checksum lists of their copies.

What this package exports is its public API, the one the application (``cli/``, ``app/``) may import (the
``cli-seam`` and ``app-seam`` contracts of ``pyproject.toml``)."""

from .dataset import ImageArray, load_images, to_model_input
from .integrity import VerifyReport, verify_images, write_checksums
from .io import ImageReadError, read_image
from .manifest import (Manifest, make_setting, open_dataset, prepare_split, read_ecotaxa_tsv, scan_folder,
                       split_manifest)
from .preprocess import Preprocess, preprocess
from .registry import DATASETS, checksum_list

__all__ = ["DATASETS", "ImageArray", "ImageReadError", "Manifest", "Preprocess", "VerifyReport", "checksum_list",
           "load_images", "make_setting", "open_dataset", "prepare_split", "preprocess", "read_ecotaxa_tsv",
           "read_image", "scan_folder", "split_manifest", "to_model_input", "verify_images", "write_checksums"]

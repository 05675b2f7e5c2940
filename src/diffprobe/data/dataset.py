"""Decode a manifest's images once into a compact in-memory array (uint8, N x S x S).

Small plankton crops at 32-64 px fit in memory by the hundred thousand (24k NDSB images at
32 px are 25 MB), so every stage works from this array instead of re-decoding JPEGs.
The array is cached on disk keyed by the manifest's fingerprint and the preprocessing.
Unreadable files are skipped and reported, never fatal.
"""

from __future__ import annotations

import csv
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..utils import DiffprobeError, hash_json, read_json
from .io import ImageReadError, read_image
from .manifest import Manifest
from .measurements import METADATA_NAMES, measure_object
from .preprocess import CROP_REVISION, Preprocess, flattened, model_input

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("DIFFPROBE_CACHE", Path.home() / ".cache" / "diffprobe"))


@dataclass
class ImageArray:
    """Preprocessed images of a manifest.

    images:  uint8 (N, S, S), background 0 when ``preprocess.invert``; (N, M, S, S) when a reading ensemble
             (``probe.ensemble``) read them, each of its M members' preprocessing on axis 1 (``preprocess``
             is then the first member's).
    labels:  int64 (N,), index into ``classes``; -1 for unlabelled images.
    splits:  (N,) split names ("train", "val", "test", or "").
    paths:   N file paths (as in the manifest).
    skipped: (path, reason) for every file that could not be used.
    meta:    float32 (N, len(METADATA_NAMES)): size and shape of each object as imaged
             (``data.measurements``), or None where the images were given already preprocessed; (N, M, K)
             for a reading ensemble, as ``images``.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    splits: np.ndarray
    paths: list[str]
    preprocess: Preprocess
    skipped: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str = ""
    meta: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.splits == split
        return self.images[m], self.labels[m]

    def training_part(self, source: str | Path = "the data") -> tuple[np.ndarray, np.ndarray]:
        """The images (and labels) a model may be trained on: the train part of a split; every image when none
        has a split (a folder read as it is: all of it is training data). A split without a train part is an
        error naming ``source``, never a silent fall-back onto val or test images."""
        if not self.splits.astype(bool).any():
            return self.images, self.labels
        if not (self.splits == "train").any():
            raise DiffprobeError(f"{source}: the split has no train part; make one with 'diffprobe split'")
        return self.part("train")

    def write_skipped(self, path: str | Path) -> Path | None:
        """A CSV report of the files that were skipped and why (nothing written when none were)."""
        if not self.skipped:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "reason"])
            w.writerows(self.skipped)
        return path


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, S, S) -> float32 (N, 1, S, S) in [-1, 1], the diffusion model's range."""
    # A copy for arrays: a read-only memory map cannot back a tensor.
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.array(images))
    return x.float().div(127.5).sub(1.0).unsqueeze(1)


def decode(path: str | Path, preprocess: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """One file -> (uint8 (S, S) model input, float32 (K,) object metadata); ``ImageReadError`` if unusable."""
    flat, settings = flattened(read_image(path), preprocess)  # flat-fielded once for both
    return model_input(flat, settings), measure_object(flat, settings)


def _decode(args: tuple[str, dict]) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    path, pre = args
    try:
        return decode(path, Preprocess.from_dict(pre)), None
    except ImageReadError as e:
        return None, e.reason
    except Exception as e:  # noqa: BLE001 - any decoder bug becomes a skip with its reason, not a crash
        return None, f"unexpected error while decoding: {type(e).__name__}: {e}"


def load_images(manifest: Manifest, preprocess: Preprocess, *, classes: list[str] | None = None,
                cache_dir: str | Path | None = None, workers: int | None = None,
                progress: bool = True) -> ImageArray:
    """Decode and preprocess every image of ``manifest`` (cached on disk when ``cache_dir`` is set).

    ``classes`` fixes the label order (e.g. a trained model's classes); images whose label is
    not among them get label -1.
    """
    classes = list(classes) if classes is not None else manifest.classes
    key = [manifest.fingerprint(), preprocess.to_dict(), classes, METADATA_NAMES]
    fp = hash_json(key + [CROP_REVISION] if preprocess.crop else key)  # caches without a crop keep their names
    cache = Path(cache_dir) / f"images-{fp}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        try:
            z = np.load(cache, allow_pickle=False)
            skipped = [tuple(r) for r in z["skipped"].tolist()] if z["skipped"].size else []
            return ImageArray(z["images"], z["labels"], classes, z["splits"], z["paths"].tolist(), preprocess,
                              skipped, fp, z["meta"])
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            log.warning("image cache %s unreadable (%s); rebuilding it", cache, e)

    jobs = [(str(manifest.full_path(i)), preprocess.to_dict()) for i in range(len(manifest))]
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    bar = dict(total=len(jobs), desc="decoding images", unit="img", disable=not progress, mininterval=1.0)
    if workers > 1 and len(jobs) > 2000:
        with ProcessPoolExecutor(workers) as ex:
            results = list(tqdm(ex.map(_decode, jobs, chunksize=256), **bar))
    else:
        results = [_decode(j) for j in tqdm(jobs, **bar)]

    index = {c: k for k, c in enumerate(classes)}
    keep, skipped = [], []
    for i, (img, reason) in enumerate(results):
        if img is None:
            skipped.append((manifest.paths[i], reason))
        else:
            keep.append(i)
    if skipped:
        log.warning("%d of %d images skipped (unreadable); see the skipped-files report", len(skipped), len(jobs))
    if not keep:
        raise DiffprobeError(f"none of the {len(jobs)} images could be read; first problem: "
                             f"{skipped[0][0]}: {skipped[0][1]}")
    images = np.stack([results[i][0][0] for i in keep])
    meta = np.stack([results[i][0][1] for i in keep])
    labels = np.array([index.get(manifest.labels[i], -1) if manifest.labels[i] is not None else -1 for i in keep],
                      dtype=np.int64)
    splits = np.array([manifest.splits[i] for i in keep])
    paths = [manifest.paths[i] for i in keep]
    arr = ImageArray(images, labels, classes, splits, paths, preprocess, skipped, fp, meta)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")  # per process: ranks may write it at once
        np.savez(tmp, images=images, meta=meta, labels=labels, splits=splits, paths=np.array(paths),
                 skipped=np.array(skipped, dtype=str).reshape(-1, 2))
        os.replace(tmp, cache)
    return arr


def load_split_images(manifest: str | Path | Manifest, preprocess: Preprocess, *, report_dir: str | Path | None = None,
                      classes: list[str] | None = None, progress: bool = True) -> ImageArray:
    """Decode a split manifest's images (cached); write ``skipped.csv`` to ``report_dir`` if any were unreadable."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)
    arr = load_images(m, preprocess, classes=classes, cache_dir=default_cache_dir() / "images", progress=progress)
    if report_dir is not None:
        where = arr.write_skipped(Path(report_dir) / "skipped.csv")
        if where:
            log.warning("%d unreadable files skipped; list in %s", len(arr.skipped), where)
    return arr


def model_preprocess(model_dir: str | Path) -> Preprocess:
    """The preprocessing a model folder was trained with (its ``preprocess.json``)."""
    p = Path(model_dir) / "preprocess.json"
    if not p.is_file():
        raise DiffprobeError(f"{model_dir}: preprocess.json missing; pass a run folder written by 'diffprobe pretrain'")
    return Preprocess.from_dict(read_json(p))

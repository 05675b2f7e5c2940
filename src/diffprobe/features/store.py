"""The on-disk feature store: one memory-mapped .npy array per (block, timestep) pair.

A store is keyed by (checkpoint hash, images hash, feature spec): the same key is reused,
anything changed gives a new store. It is filled chunk by chunk under a ``.partial`` name
with a progress file, so an interrupted extraction resumes where it stopped and a partial
store is never taken for a complete one. Arrays are memory-mapped: neither extraction nor
probing holds all features in RAM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from ..backbones.base import Backbone, load_backbone
from ..config.features import ExtractConfig
from ..data.dataset import ImageArray
from ..data.measurements import METADATA_NAMES, SIZE_NAMES
from ..utils import DiffprobeError, hash_json, read_json, resolve_precision, write_json
from .extract import FeatureSpec, view_features

FORMAT_VERSION = 2  # 2: noise seeded per (image, timestep, draw)


def pair_name(block: str, t: int) -> str:
    return f"{block}_t{t:03d}"


def images_hash(images: ImageArray, rows: int = 65536) -> str:
    h = hashlib.sha256()
    for arr in (images.images, images.labels, images.splits.astype("U8")):
        for start in range(0, len(arr), rows):  # in pieces: the images may be a memory map larger than RAM
            h.update(np.ascontiguousarray(arr[start:start + rows]).tobytes())
    h.update(repr(images.classes).encode())
    return h.hexdigest()[:16]


class FeatureStore:
    """Read access to a complete store.

    ``get(block, t)`` -> float32 (N, D) memmap; ``labels`` (N,), ``splits`` (N,), ``classes``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "meta.json").is_file():
            raise DiffprobeError(f"{self.path}: not a complete feature store (meta.json missing); "
                                 f"run 'diffprobe features' to build it")
        self.meta = read_json(self.path / "meta.json")
        if self.meta.get("format") != FORMAT_VERSION:
            raise DiffprobeError(f"{self.path}: feature store format {self.meta.get('format')} is not "
                                 f"{FORMAT_VERSION}; rebuild it with 'diffprobe features'")
        self.spec = FeatureSpec.from_dict(self.meta["spec"])
        self.blocks: list[str] = self.meta["blocks"]
        self.timesteps: list[int] = self.meta["spec"]["timesteps"]
        self.dims: dict[str, int] = self.meta["dims"]
        self.classes: list[str] = self.meta["classes"]
        self.labels = np.load(self.path / "labels.npy")
        self.splits = np.load(self.path / "splits.npy")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(b, t) for b in self.blocks for t in self.timesteps]

    @property
    def metadata(self) -> np.ndarray | None:
        """float32 (N, K) object measurements (``metadata_names``), or None (stores made without)."""
        f = self.path / "metadata.npy"
        return np.load(f) if f.is_file() else None

    @property
    def metadata_names(self) -> list[str]:
        """The names of the ``metadata`` columns (stores made before the shape measurements: the sizes alone)."""
        if not (self.path / "metadata.npy").is_file():
            return []
        return list(self.meta.get("metadata", SIZE_NAMES))

    def get(self, block: str, t: int) -> np.ndarray:
        f = self.path / f"{pair_name(block, t)}.npy"
        if not f.is_file():
            raise DiffprobeError(f"{self.path}: no features for block {block!r} at t={t}; "
                                 f"the store has blocks {self.blocks} and timesteps {self.timesteps}")
        return np.load(f, mmap_mode="r")


def extract_features(model: str | Path | Backbone, images: ImageArray, spec: FeatureSpec, root: str | Path, *,
                     batch_size: int = ExtractConfig.batch_size, progress: bool = True,
                     device: torch.device | None = None, flush_every: int = 8) -> FeatureStore:
    """Build (or reuse, or resume) the feature store of ``images`` under ``root``; return it.

    ``model``: a backbone directory (any registered kind) or a loaded ``Backbone``.
    Under ``torchrun`` / ``accelerate launch`` every process takes its share of each chunk of images and
    writes its rows into the shared memory-mapped arrays; the main process keeps the progress file and
    finishes the store. Features do not depend on the batch an image is in, so the store is the same.
    """
    state = PartialState(cpu=not torch.cuda.is_available())
    world, rank = state.num_processes, state.process_index
    if device is None and world > 1:
        device = state.device  # one GPU per process
    backbone = model if isinstance(model, Backbone) else load_backbone(model, device=device)
    # The store holds the precision the features were computed in (not "auto"): bf16 and fp32 features differ.
    spec = replace(spec, precision=resolve_precision(spec.precision, backbone.device))
    key_parts = {"backbone": backbone.kind, "checkpoint": backbone.content_hash(), "images": images_hash(images),
                 "spec": spec.to_dict(), "format": FORMAT_VERSION,
                 "metadata": list(METADATA_NAMES) if images.meta is not None else []}
    key = hash_json(key_parts)
    final = Path(root) / f"features-{key}"
    if (final / "meta.json").is_file():
        return FeatureStore(final)

    if backbone.image_size != images.images.shape[-1]:
        raise DiffprobeError(f"{backbone.path}: the model was trained on {backbone.image_size} px images but "
                             f"these are {images.images.shape[-1]} px; preprocess with that image size")
    blocks = list(spec.blocks) or backbone.block_names()
    n = len(images)
    one = backbone.features_batch(images.images[:1], FeatureSpec(**{**spec.to_dict(), "timesteps": [spec.timesteps[0]],
                                                                    "n_noise": 1, "blocks": blocks}))
    dims = {b: one[(b, spec.timesteps[0])].shape[1] for b in blocks}

    partial = final.with_name(f".{final.name}.partial")
    progress_file = partial / "progress.json"
    resumable = progress_file.is_file() and read_json(progress_file).get("key") == key
    if state.is_main_process and not resumable:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for b in blocks:
            for t in spec.timesteps:
                np.lib.format.open_memmap(partial / f"{pair_name(b, t)}.npy", mode="w+", dtype=np.float32,
                                          shape=(n, dims[b])).flush()
        write_json(progress_file, {"key": key, "done": 0})
    state.wait_for_everyone()  # the arrays exist before any process opens them
    done = read_json(progress_file)["done"]
    arrays = {(b, t): np.load(partial / f"{pair_name(b, t)}.npy", mmap_mode="r+") for b in blocks
              for t in spec.timesteps}

    def checkpoint(upto: int):
        for a in arrays.values():
            a.flush()
        state.wait_for_everyone()  # every process's rows are on disk before the progress says so
        if state.is_main_process:
            write_json(progress_file, {"key": key, "done": upto})

    bar = tqdm(total=n, initial=done, desc="features", unit="img", disable=not (progress and state.is_main_process),
               mininterval=2.0)
    chunks = 0
    for start in range(done, n, batch_size):
        stop = min(n, start + batch_size)
        mine = np.array_split(np.arange(start, stop), world)[rank]
        if len(mine):
            feats = view_features(backbone, images.images[mine[0]:mine[-1] + 1], spec)
            for k, v in feats.items():
                arrays[k][mine[0]:mine[-1] + 1] = v
        bar.update(stop - start)
        chunks += 1
        if chunks % flush_every == 0:
            checkpoint(stop)
    bar.close()
    checkpoint(n)
    del arrays
    if state.is_main_process:
        np.save(partial / "labels.npy", images.labels)
        np.save(partial / "splits.npy", images.splits.astype("U8"))
        if images.meta is not None:  # the objects' size and shape, read beside the features by richer heads
            np.save(partial / "metadata.npy", images.meta)
        write_json(partial / "paths.json", list(map(str, images.paths)))
        os.remove(progress_file)
        write_json(partial / "meta.json", {**key_parts, "key": key, "blocks": blocks, "dims": dims, "n": n,
                                           "classes": images.classes, "preprocess": images.preprocess.to_dict(),
                                           "model_dir": str(backbone.path.resolve())})
        os.replace(partial, final)
    state.wait_for_everyone()  # the store is complete before any process reads it
    return FeatureStore(final)

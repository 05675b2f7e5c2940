"""What every backbone offers the feature, probe and evaluation stages, and a registry of kinds.

A backbone lives in a directory with ``backbone.json`` (``{"kind": ..., ...}``) and its weights
in safetensors. Stages only use this interface, so the DDPM U-Net, the baselines and the
RC-DiT share one feature store, one probe, one bundle format and one evaluation.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..config.backbones import POOLINGS  # noqa: F401 - defined without torch, re-exported
from ..utils import DiffprobeError, read_json, sha256_file, write_json

BACKBONES: dict[str, type["Backbone"]] = {}


def pool(fmap: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, D): D = C (avg, max), 2C (avgmax), C*N*N (gridN, channel-major: index c*N*N + i*N + j)."""
    if how == "avg":
        return fmap.mean(dim=(2, 3))
    if how == "max":
        return fmap.amax(dim=(2, 3))
    if how == "avgmax":
        return torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)
    if how in ("grid2", "grid4", "grid8"):
        return F.adaptive_avg_pool2d(fmap, int(how[4:])).flatten(1)
    raise DiffprobeError(f"unknown pooling {how!r}; choose one of {POOLINGS}")


def image_seeds(images: np.ndarray, seed: int) -> list[int]:
    """A noise seed per image from its pixels: the same image always gets the same noise."""
    return [zlib.crc32(np.ascontiguousarray(im).tobytes(), seed & 0xFFFFFFFF) & 0x7FFFFFFF for im in images]



def register(kind: str) -> Callable[[type], type]:
    def deco(cls):
        cls.kind = kind
        BACKBONES[kind] = cls
        return cls
    return deco


class Backbone:
    """A frozen feature extractor.

    Subclasses implement ``load``, ``block_names`` and ``features_batch``. Backbones without a
    diffusion timestep use the single timestep 0 in the (block, timestep) grid.
    """

    kind: str = ""
    weights_file: str = ""  # relative path of the main safetensors file, hashed to key feature caches

    def __init__(self, path: Path, model: torch.nn.Module, image_size: int):
        self.path, self.model, self.image_size = Path(path), model, image_size

    @property
    def device(self) -> torch.device:
        first = next(self.model.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> "Backbone":
        raise NotImplementedError

    def block_names(self) -> list[str]:
        raise NotImplementedError

    def features_batch(self, images: np.ndarray, spec) -> dict[tuple[str, int], np.ndarray]:
        """uint8 (B, S, S) -> {(block, t): float32 (B, D)} for every pair of ``spec``."""
        raise NotImplementedError

    def content_hash(self) -> str:
        return sha256_file(self.path / self.weights_file)[:16]

    def copy_to(self, dest: Path) -> Path:
        """Copy the backbone's directory (weights and configs) into ``dest``, e.g. a bundle."""
        dest = Path(dest)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(self.path, dest, ignore=shutil.ignore_patterns("checkpoint", "*.partial", "train_log.csv"))
        return dest


def write_backbone_json(path: Path, kind: str, **extra) -> None:
    write_json(Path(path) / "backbone.json", {"kind": kind, **extra})


def load_backbone(path: str | Path, device: torch.device | None = None) -> Backbone:
    """Open any registered backbone directory (``backbone.json`` says which kind)."""
    path = Path(path)
    meta_file = path / "backbone.json"
    if not meta_file.is_file():
        raise DiffprobeError(f"{path}: not a backbone directory (backbone.json missing); pass a run folder "
                             f"written by 'diffprobe pretrain'")
    kind = read_json(meta_file).get("kind")
    if kind not in BACKBONES:
        raise DiffprobeError(f"{meta_file}: unknown backbone kind {kind!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[kind].load(path, device=device)

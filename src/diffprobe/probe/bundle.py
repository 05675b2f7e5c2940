"""The classifier bundle: a frozen backbone, the chosen (block, timestep), its linear probe,
class names, preprocessing and calibration, in one directory that ``evaluate`` and ``predict`` load.

Layout::

    bundle/
      bundle.json          classes, block, timestep, image size, feature spec, temperature, metrics
      probe.safetensors    weight (D, C), bias (C,), mean (D,), std (D,)
      backbone/            the frozen backbone directory (backbone.json + safetensors weights)

Weights are read with safetensors only; ``bundle.json`` is validated before use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..backbones.base import Backbone, load_backbone
from ..data.io import ImageReadError, read_image
from ..data.preprocess import Preprocess
from ..features.extract import FeatureSpec
from ..utils import DiffprobeError, read_json, write_json
from .linear import LinearHead

BUNDLE_FORMAT = 1
_REQUIRED = {"format": int, "classes": list, "block": str, "timestep": int, "image_size": int,
             "preprocess": dict, "feature_spec": dict, "temperature": (int, float), "metrics": dict}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class ClassifierBundle:
    """A ready-to-use classifier. ``predict_proba(images)``: uint8 (N, S, S) -> (N, C) probabilities."""

    path: Path
    meta: dict
    head: LinearHead
    backbone: Backbone = field(repr=False)

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_dict(self.meta["preprocess"])

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])

    # ---- writing -----------------------------------------------------------------------------
    @staticmethod
    def save(path: str | Path, *, model_dir: str | Path, head: LinearHead, meta: dict) -> Path:
        """Write a bundle: copy the backbone, the probe tensors and ``bundle.json`` (validated)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        load_backbone(model_dir, device=torch.device("cpu")).copy_to(path / "backbone")
        save_file(head.tensors(), path / "probe.safetensors")
        meta = {"format": BUNDLE_FORMAT, "temperature": 1.0, **meta}
        _validate(meta, path / "bundle.json")
        write_json(path / "bundle.json", meta)
        return path

    # ---- reading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: torch.device | None = None) -> "ClassifierBundle":
        path = Path(path)
        if not (path / "bundle.json").is_file():
            raise DiffprobeError(f"{path}: not a classifier bundle (bundle.json missing); pass the bundle/ folder "
                                 f"written by 'diffprobe probe'")
        meta = read_json(path / "bundle.json")
        _validate(meta, path / "bundle.json")
        try:
            t = load_file(path / "probe.safetensors")
        except Exception as e:  # noqa: BLE001
            raise DiffprobeError(f"{path / 'probe.safetensors'}: unreadable ({e}); re-create the bundle") from None
        head = LinearHead(t["weight"].numpy(), t["bias"].numpy(), t["mean"].numpy(), t["std"].numpy())
        if head.weight.shape[1] != len(meta["classes"]):
            raise DiffprobeError(f"{path}: probe has {head.weight.shape[1]} outputs but bundle.json names "
                                 f"{len(meta['classes'])} classes; the bundle is inconsistent, re-create it")
        backbone = load_backbone(path / "backbone", device=device)
        if backbone.image_size != meta["image_size"]:
            raise DiffprobeError(f"{path}: bundle.json says {meta['image_size']} px but its backbone was trained on "
                                 f"{backbone.image_size} px; the bundle is inconsistent, re-create it")
        return cls(path, meta, head, backbone)

    def feature_spec(self) -> FeatureSpec:
        spec = dict(self.meta["feature_spec"])
        spec.update(timesteps=[self.meta["timestep"]], blocks=[self.meta["block"]])
        return FeatureSpec.from_dict(spec)

    def features(self, images: np.ndarray, batch_size: int = 256, progress: bool = False) -> np.ndarray:
        """uint8 (N, S, S) preprocessed images -> (N, D) features at the bundle's (block, timestep)."""
        images = np.asarray(images)
        s = self.meta["image_size"]
        if images.ndim != 3 or images.shape[1:] != (s, s):
            raise DiffprobeError(f"images must be preprocessed to (N, {s}, {s}); got {images.shape}. "
                                 f"Use bundle.preprocess or predict_paths()")
        spec, key = self.feature_spec(), (self.meta["block"], self.meta["timestep"])
        out = []
        for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc="classifying", unit="batch"):
            out.append(self.backbone.features_batch(images[i : i + batch_size], spec)[key])
        return np.concatenate(out) if out else np.zeros((0, self.head.weight.shape[0]), np.float32)

    def logits(self, images: np.ndarray, **kw) -> np.ndarray:
        return self.head.logits(self.features(images, **kw))

    def predict_proba(self, images: np.ndarray, **kw) -> np.ndarray:
        """Calibrated probabilities (temperature-scaled softmax), (N, C)."""
        return _softmax(self.logits(images, **kw) / self.temperature)

    def load_paths(self, paths: list[str | Path]) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
        """Read and preprocess files: (images, indices of the readable ones, [(path, reason)] skipped)."""
        pre = self.preprocess
        imgs, ok, skipped = [], [], []
        for i, p in enumerate(paths):
            try:
                imgs.append(pre(read_image(p)))
                ok.append(i)
            except ImageReadError as e:
                skipped.append((str(p), e.reason))
        s = self.meta["image_size"]
        return (np.stack(imgs) if imgs else np.zeros((0, s, s), np.uint8)), ok, skipped


def _validate(meta: dict, where: Path) -> None:
    for k, typ in _REQUIRED.items():
        if k not in meta:
            raise DiffprobeError(f"{where}: missing field {k!r}; the bundle is incomplete, re-create it")
        if not isinstance(meta[k], typ) or isinstance(meta[k], bool) and typ is int:
            raise DiffprobeError(f"{where}: field {k!r} should be {typ}, got {type(meta[k]).__name__}")
    if meta["format"] != BUNDLE_FORMAT:
        raise DiffprobeError(f"{where}: bundle format {meta['format']} is not supported (expected {BUNDLE_FORMAT})")
    if not meta["classes"] or not all(isinstance(c, str) for c in meta["classes"]):
        raise DiffprobeError(f"{where}: 'classes' must be a non-empty list of names")
    if not meta["temperature"] > 0:
        raise DiffprobeError(f"{where}: temperature must be positive")
    for k in ("test_accuracy", "test_macro_f1"):
        if not isinstance(meta["metrics"].get(k), (int, float)):
            raise DiffprobeError(f"{where}: metrics.{k} must be a number")

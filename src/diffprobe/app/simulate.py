"""A project of any size without a model or images to run one through: for measuring the server
(``benchmarks/annotation.py --timing``) and for testing it at scale (``tests/app``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..utils import write_json
from .project import DB_FILE, FEATURES_FILE, FORMAT, PROJECT_FILE, save_uncertainty
from .store import Store

SIZE = 64  # px, of every synthetic object


def synthetic_project(root: Path, n: int, dim: int, n_classes: int, *, seed: int = 0, images: int = 0) -> None:
    """A project of ``n`` objects, as ``app init`` lays it out: each object's features drawn around the centre of
    its predicted class (a Gaussian per class, so a retrain converges as on real features), random probabilities.
    ``images``: that many distinct images written into ``root/img`` and shared by the objects in turn (0: none,
    the objects name files that do not exist)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    classes = [f"class_{k:03d}" for k in range(n_classes)]
    predicted = rng.integers(0, n_classes, n)
    centres = rng.standard_normal((n_classes, dim)).astype(np.float32)
    features = np.lib.format.open_memmap(root / FEATURES_FILE, mode="w+", dtype=np.float32, shape=(n, dim))
    for start in range(0, n, 65536):
        rows = predicted[start : start + 65536]
        features[start : start + 65536] = centres[rows] + rng.standard_normal((len(rows), dim), np.float32)
    features.flush()
    del features
    probability = rng.uniform(0.2, 1.0, n)
    if images:
        _write_images(root / "img", images, rng)
    store = Store(f"sqlite:///{root / DB_FILE}")
    store.add_classes(classes, "model")
    for start in range(0, n, 50_000):
        store.add_objects([{"id": i, "object_id": f"obj{i}", "path": f"img/{i % images if images else i}.png",
                            "sample": "synthetic", "width": SIZE, "height": SIZE,
                            "predicted_label": classes[predicted[i]], "probability": float(probability[i])}
                           for i in range(start, min(n, start + 50_000))])
    store.close()
    save_uncertainty(root, probability * rng.uniform(0, 1, n), rng.uniform(0, np.log(n_classes), n))
    write_json(root / PROJECT_FILE, {"format": FORMAT, "images": "synthetic", "images_root": str(root),
                                     "model": "synthetic", "classes": classes, "n_objects": n, "n_skipped": 0,
                                     "feature_dim": dim, "database_url": None})


def _write_images(folder: Path, k: int, rng: np.random.Generator) -> None:
    """``k`` grey ellipses on white, SIZE px square, as 0.png ... (k-1).png."""
    folder.mkdir()
    y, x = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    for i in range(k):
        a, b = rng.uniform(6, SIZE / 2 - 2, 2)
        angle = rng.uniform(0, np.pi)
        u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1
        Image.fromarray(np.where(inside, rng.integers(40, 160), 255).astype(np.uint8)).save(folder / f"{i}.png")

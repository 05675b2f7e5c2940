"""Label efficiency: the linear probe of one (block, timestep) pair trained on a few labelled images per class.

Frozen features should matter most where labels are few. For each number of labels per class, ``draws`` random
subsets of the train part (that many images of every class, all of a class that has fewer) train the same
``GridProbe``; the full val part still chooses the weight decay and stops training (the count is of training
labels), and the test part scores each draw. ``None`` in ``shots`` is the whole train part (one draw: nothing to
draw).
"""

from __future__ import annotations

import numpy as np

from ..features.store import FeatureStore
from ..utils import DiffprobeError
from .linear import GridProbe
from .metrics import classification_metrics


def per_class_subset(labels: np.ndarray, rows: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices into ``labels``: ``shots`` of ``rows`` per class (all of a class that has fewer)."""
    picked = [rng.choice(members, min(shots, len(members)), replace=False)
              for c in np.unique(labels[rows]) for members in [rows[labels[rows] == c]]]
    return np.sort(np.concatenate(picked))


def label_curve(store: FeatureStore, block: str, timestep: int, *, shots: tuple[int | None, ...] = (1, 5, 10, 50, None),
                draws: int = 3, probe: GridProbe | None = None, seed: int = 0) -> list[dict]:
    """One row per number of labels per class: ``shots`` (None: all), ``n_train`` (mean images), test
    ``accuracy`` / ``macro_f1`` as mean and std over the draws, and each draw's values."""
    if draws < 1 or any(k is not None and k < 1 for k in shots):
        raise DiffprobeError(f"label counts must be >= 1 (or all) and draws >= 1, got {shots}, {draws}")
    probe = probe or GridProbe(seed=seed)
    x = store.get(block, timestep)
    y = store.labels
    part = {s: np.flatnonzero(store.splits == s) for s in ("train", "val", "test")}
    if any(len(v) == 0 for v in part.values()):
        raise DiffprobeError(f"{store.path}: the label curve needs train, val and test parts")
    x_val, x_test = np.asarray(x[part["val"]], np.float32), np.asarray(x[part["test"]], np.float32)
    rows = []
    for k in shots:
        runs = []
        for d in range(1 if k is None else draws):
            idx = part["train"] if k is None else per_class_subset(y, part["train"], k,
                                                                   np.random.default_rng([seed, k, d]))
            head = probe.fit([np.asarray(x[idx], np.float32)], y[idx], [x_val], y[part["val"]], len(store.classes))[0]
            met = classification_metrics(y[part["test"]], head.logits(x_test).argmax(1))
            runs.append({"n_train": len(idx), "accuracy": met["accuracy"], "macro_f1": met["macro_f1"]})
        rows.append({"shots": k, "n_train": float(np.mean([r["n_train"] for r in runs])),
                     **{f"{m}_{stat}": float(fn([r[m] for r in runs])) for m in ("accuracy", "macro_f1")
                        for stat, fn in (("mean", np.mean), ("std", np.std))}, "draws": runs})
    return rows

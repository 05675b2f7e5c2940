"""The probe stage's computation: a linear probe on every (block, timestep) pair of a feature store, fitted
in chunks of pairs that fit in RAM (each process its share under ``torchrun``), the best pair chosen on val,
test scored once, the chosen head calibrated on val; and the metadata of a bundle of a head fitted on a store.
No file is written here: ``workflows.probe.run_probe`` writes results.json, report.md, the figures and the
bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import softmax
from sklearn.metrics import confusion_matrix

from ..features.store import FeatureStore
from ..utils import DiffprobeError
from .calibration import expected_calibration_error, fit_temperature, unknown_thresholds
from .linear import GridProbe
from .metrics import chance_accuracy, classification_metrics, per_class_f1

PARTS = ("train", "val", "test")


def split_masks(store: FeatureStore) -> dict[str, np.ndarray]:
    """(N,) boolean masks of the store's train, val and test parts; an empty part is refused."""
    masks = {s: store.splits == s for s in PARTS}
    for s, m in masks.items():
        if not m.any():
            raise DiffprobeError(f"{store.path}: the {s} part is empty; the probe needs a train/val/test split "
                                 f"(use 'diffprobe split' or a manifest with a split column)")
    return masks


def pair_chunks(store: FeatureStore, max_gb: float) -> list[list[int]]:
    """Indices of the store's pairs in consecutive chunks whose features fit in ``max_gb`` of RAM (float32)."""
    per_pair = [len(store) * store.dims[b] * 4 for b, _ in store.pairs]
    chunks, size = [[]], 0
    for i, nbytes in enumerate(per_pair):
        if chunks[-1] and size + nbytes > max_gb * 2**30:
            chunks.append([])
            size = 0
        chunks[-1].append(i)
        size += nbytes
    return chunks


def pair_features(store: FeatureStore, k: int, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The features of the store's ``k``-th pair, per part (float32)."""
    arr = store.get(*store.pairs[k])
    return {s: np.asarray(arr[m], dtype=np.float32) for s, m in masks.items()}


def probe_pairs(store: FeatureStore, probe: GridProbe, max_gb: float, *, rank: int = 0,
                world: int = 1) -> list[tuple[int, dict, object]]:
    """Fit ``probe`` on the pairs of ``store`` that fall to process ``rank`` of ``world`` (every pair for one
    process), read in chunks of at most ``max_gb`` of features; returns (pair index, grid row, head) per pair,
    the row holding the val and test metrics, the weight decay and the epochs."""
    masks = split_masks(store)
    y = {s: store.labels[m] for s, m in masks.items()}
    pairs = store.pairs
    done = []
    for chunk in pair_chunks(store, max_gb):
        mine = chunk[rank::world]
        if not mine:
            continue
        feats = [pair_features(store, k, masks) for k in mine]
        fitted = probe.fit([f["train"] for f in feats], y["train"], [f["val"] for f in feats], y["val"],
                           len(store.classes))
        for k, f, head in zip(mine, feats, fitted):
            row = {"block": pairs[k][0], "timestep": pairs[k][1]}
            for s in ("val", "test"):
                met = classification_metrics(y[s], head.logits(f[s]).argmax(1))
                row.update({f"{s}_{name}": v for name, v in met.items()})
            row.update(weight_decay=head.weight_decay, epochs=head.epochs)
            done.append((k, row, head))
        del feats
    return done


@dataclass
class ProbeChoice:
    """The probe run's results (``results.json`` less ``bundle``), the chosen head, its val logits, its
    temperature and its test confusion matrix (C, C)."""

    results: dict
    head: object
    val_logits: np.ndarray
    temperature: float
    confusion: np.ndarray


def choose_pair(store: FeatureStore, probe: GridProbe, done: list[tuple[int, dict, object]]) -> ProbeChoice:
    """The best pair of ``probe_pairs``'s rows (of every process), chosen on val only (accuracy, then macro F1;
    the test columns are reported, never consulted); its head calibrated on val and scored once on test."""
    masks = split_masks(store)
    y = {s: store.labels[m] for s, m in masks.items()}
    n_classes = len(store.classes)
    done = sorted(done, key=lambda d: d[0])
    grid, heads = [d[1] for d in done], [d[2] for d in done]
    best_i = max(range(len(grid)), key=lambda i: (grid[i]["val_accuracy"], grid[i]["val_macro_f1"]))
    best = dict(grid[best_i])
    head = heads[best_i]
    best_feats = pair_features(store, best_i, masks)

    val_logits = head.logits(best_feats["val"])
    test_logits = head.logits(best_feats["test"])
    temperature = fit_temperature(val_logits, y["val"])
    calib = {"temperature": temperature,
             "test_ece_before": expected_calibration_error(softmax(test_logits, axis=1), y["test"]),
             "test_ece_after": expected_calibration_error(softmax(test_logits / temperature, axis=1), y["test"])}
    pred = test_logits.argmax(1)
    cm = confusion_matrix(y["test"], pred, labels=range(n_classes))
    class_f1 = per_class_f1(y["test"], pred, n_classes)

    results = {
        "grid": grid, "best": best, "n_classes": n_classes, "chance_accuracy": chance_accuracy(y["test"]),
        "classes": store.classes, "split_sizes": {s: int(m.sum()) for s, m in masks.items()},
        "feature_store": str(store.path), "feature_spec": store.spec.to_dict(), "calibration": calib,
        "probe": {"epochs": probe.epochs, "lr": probe.lr, "weight_decays": list(probe.weight_decays),
                  "class_balanced": probe.class_balanced, "patience": probe.patience, "seed": probe.seed,
                  "whiten": probe.whiten, "n_pairs": len(store.pairs)},
        "per_class_test_f1": dict(zip(store.classes, class_f1)),
    }
    return ProbeChoice(results, head, val_logits, temperature, cm)


def store_bundle_meta(store: FeatureStore, pairs: list[tuple[str, int]], val_logits: np.ndarray,
                      temperature: float, metrics: dict, metadata: list[str] = (),
                      train_parts: tuple[str, ...] = ("train",)) -> dict:
    """``bundle.json``'s fields for a head fitted on ``store``'s ``pairs`` (and object ``metadata``) of
    ``train_parts``: the store's preprocessing, the val logits' temperature, confusion and unknown thresholds,
    the class counts of the images the head learned from."""
    masks = split_masks(store)
    fitted_on = np.isin(store.splits, train_parts)
    y_train, y_val, n_classes = store.labels[fitted_on], store.labels[masks["val"]], len(store.classes)
    return {
        "classes": store.classes, "pairs": [[b, int(t)] for b, t in pairs], "metadata": list(metadata),
        "image_size": int(store.meta["preprocess"]["size"]), "preprocess": store.meta["preprocess"],
        "feature_spec": store.spec.to_dict(), "temperature": temperature, "metrics": metrics,
        "train_class_counts": np.bincount(y_train, minlength=n_classes).tolist(),
        **({"metadata_medians": np.median(store.metadata[fitted_on], 0).tolist()} if metadata else {}),
        # For adjusted counting (ACC) and unknown rejection at prediction time.
        "val_confusion": confusion_matrix(y_val, val_logits.argmax(1), labels=range(n_classes)).tolist(),
        "unknown": unknown_thresholds(val_logits, temperature)}


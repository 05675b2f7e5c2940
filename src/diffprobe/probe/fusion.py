"""Fused features: one head on the concatenation of the best (block, timestep) pairs, optionally with
the objects' size and shape metadata, written as a classifier bundle.

Single pairs see one resolution at one noise level; blocks and timesteps carry complementary
information (the papers' heatmaps are flat near the top), so concatenating the top pairs is the
cheapest way past the best single pair. The head is the linear probe (the paper's readout) or a
one-hidden-layer MLP (``probe.mlp``), which on NDSB reads several pairs and the metadata far better
(``experiments/accuracy_levers/accuracy_levers.py``). Everything is chosen on val: the ranking of pairs (the grid's
val accuracy from ``diffprobe probe``), the number of pairs fused, ``k``, and the MLP's grid. Test is
reported once, for the chosen ``k`` (the other candidates' test columns are recorded, never consulted).

``refit``: once val has chosen everything (k, the MLP's settings, its epoch, the temperature), the chosen
head is trained again on train + val (``MLPProbe.refit``), as scikit-learn's searches refit on all the data
they were given: the bundle then learns from every labelled image. Val can no longer score that head, so
its val columns, confusion and unknown thresholds stay those of the train-only head.

No file is read or written here: ``workflows.fusion.fuse_pairs`` reads the probe's results, writes
``fusion.json``, ``fusion.md`` and the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import softmax

from ..config.probe import HEADS, FusionConfig
from ..features.store import FeatureStore
from ..utils import DiffprobeError
from .calibration import fit_temperature
from .linear import GridProbe
from .metrics import classification_metrics, multiclass_log_loss, per_class_f1
from .mlp import MLPProbe

DEFAULT_KS = FusionConfig.ks


def rank_pairs(results: dict) -> list[tuple[str, int]]:
    """Pairs of a probe ``results.json`` grid, best val accuracy first (ties: val macro F1)."""
    grid = sorted(results["grid"], key=lambda g: (g["val_accuracy"], g["val_macro_f1"]), reverse=True)
    return [(g["block"], int(g["timestep"])) for g in grid]


@dataclass
class Fusion:
    """``fit_fusion``'s outcome: the results (``fusion.json`` less ``bundle``), the head to bundle (the refitted
    one under ``refit``), its pairs, the chosen train-only head's val logits and temperature, the parts the
    bundled head learned from."""

    results: dict
    head: object
    pairs: list[tuple[str, int]]
    val_logits: np.ndarray
    temperature: float
    train_parts: tuple[str, ...]


def fit_fusion(store: FeatureStore, results: dict, *, ks: tuple[int, ...] = FusionConfig.ks,
               probe: GridProbe | None = None, head: str = FusionConfig.head, metadata: bool = FusionConfig.metadata,
               mlp: MLPProbe | None = None, metadata_weight: float = FusionConfig.metadata_weight,
               refit: bool = FusionConfig.refit) -> Fusion:
    """Fit ``head`` on the concatenated features of the top-k pairs (and the store's object metadata when
    ``metadata``) for every k in ``ks``; choose k on val (accuracy, then log loss).

    store: the feature store the grid was probed on; results: its ``results.json`` dict.
    ``metadata_weight`` (MLP head only): the metadata columns' weight after standardisation (``MLPProbe.fit``'s
    ``tail``); the linear probe weighs every standardised column alike.
    ``refit`` (MLP head only): the chosen head trained again on train + val, reported as ``refit`` and bundled.
    """
    if head not in HEADS:
        raise DiffprobeError(f"unknown head {head!r}; choose one of {HEADS}")
    if refit and head != "mlp":
        raise DiffprobeError("refit on train + val is implemented for the MLP head (--head mlp) only")
    if not metadata_weight > 0:
        raise DiffprobeError(f"the metadata weight must be a positive number, got {metadata_weight!r}")
    # Stores are named by their key (weights, images, settings), so the folder name identifies one.
    if Path(results.get("feature_store", store.path)).name != store.path.name:
        raise DiffprobeError(f"the results were probed on {results['feature_store']}, not on {store.path}; "
                             f"pass the results.json of this store's 'diffprobe probe'")
    meta = store.metadata if metadata else None
    if metadata and meta is None:
        raise DiffprobeError(f"{store.path}: this feature store holds no object metadata (made before it existed, "
                             f"or from preprocessed arrays); extract the features again with 'diffprobe features'")
    ranked = [p for p in rank_pairs(results) if p in set(store.pairs)]
    lowest = 1 if (metadata or head == "mlp") else 2  # one pair alone is already a new readout then
    ks = tuple(sorted({k for k in ks if lowest <= k <= len(ranked)}))
    if not ks:
        raise DiffprobeError(f"{store.path}: fusion needs at least 2 pairs (the store has {len(ranked)}); "
                             f"extract more blocks or timesteps")
    probe = probe or GridProbe()
    mlp = mlp or MLPProbe(seed=probe.seed, precision=probe.precision)
    masks = {s: store.splits == s for s in ("train", "val", "test")}
    y = {s: store.labels[m] for s, m in masks.items()}
    n_classes = len(store.classes)
    cols = {s: [np.asarray(store.get(b, t)[m], dtype=np.float32) for b, t in ranked[: max(ks)]]
            for s, m in masks.items()}

    def inputs(s: str, k: int) -> np.ndarray:
        return np.concatenate(cols[s][:k] + ([meta[masks[s]]] if meta is not None else []), axis=1)

    if head == "linear":
        heads = probe.fit([inputs("train", k) for k in ks], y["train"], [inputs("val", k) for k in ks], y["val"],
                          n_classes)
    else:
        tail = (meta.shape[1], metadata_weight) if meta is not None else (0, 1.0)
        heads = [mlp.fit(inputs("train", k), y["train"], inputs("val", k), y["val"], n_classes, tail=tail) for k in ks]
    rows, fitted, test_preds = [], [], []
    for k, h in zip(ks, heads):
        row = {"k": k, "pairs": [{"block": b, "timestep": t} for b, t in ranked[:k]],
               "dim": inputs("val", k).shape[1]}
        row.update({"weight_decay": h.weight_decay, "epochs": h.epochs} if head == "linear" else {"mlp": h.config})
        logits = {s: h.logits(inputs(s, k)) for s in ("val", "test")}
        temperature = fit_temperature(logits["val"], y["val"])
        fitted.append((logits["val"], temperature))
        test_preds.append(logits["test"].argmax(1))
        for s in ("val", "test"):
            row.update({f"{s}_{name}": v for name, v in classification_metrics(y[s], logits[s].argmax(1)).items()})
            row[f"{s}_log_loss"] = multiclass_log_loss(y[s], softmax(logits[s] / temperature, axis=1))
        rows.append(row)
    best_i = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -rows[i]["val_log_loss"], -rows[i]["k"]))
    best = rows[best_i]
    single = results["best"]
    r = {"feature_store": str(store.path), "head": head, "metadata": store.metadata_names if metadata else [],
         **({"metadata_weight": metadata_weight} if metadata and head == "mlp" else {}),
         "candidates": rows, "best": best,
         "per_class_test_f1": dict(zip(store.classes, per_class_f1(y["test"], test_preds[best_i], n_classes))),
         "best_single_pair": {k: single[k] for k in ("block", "timestep", "val_accuracy", "test_accuracy",
                                                     "test_macro_f1")},
         "probe": {"epochs": probe.epochs, "lr": probe.lr, "weight_decays": list(probe.weight_decays),
                   "class_balanced": probe.class_balanced, "seed": probe.seed} if head == "linear" else
         {"hidden": list(mlp.hidden), "dropout": list(mlp.dropout), "weight_decays": list(mlp.weight_decays),
          "epochs": mlp.epochs, "lr": mlp.lr, "seed": mlp.seed, "ensemble": mlp.ensemble}}
    final, train_parts = heads[best_i], ("train",)
    if refit:
        k, temperature = best["k"], fitted[best_i][1]
        train_parts = ("train", "val")
        final = mlp.refit(np.concatenate([inputs("train", k), inputs("val", k)]),
                          np.concatenate([y["train"], y["val"]]), heads[best_i], n_classes)
        logits = final.logits(inputs("test", k))
        r["refit"] = {"parts": list(train_parts), "images": int(len(y["train"]) + len(y["val"])),
                      "epoch": final.config["epoch"], "temperature": temperature,
                      **{f"test_{name}": v for name, v in classification_metrics(y["test"], logits.argmax(1)).items()},
                      "test_log_loss": multiclass_log_loss(y["test"], softmax(logits / temperature, axis=1))}
    return Fusion(r, final, ranked[:best["k"]], *fitted[best_i], train_parts)

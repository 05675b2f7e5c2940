"""The probe stage: a linear probe on every (block, timestep) pair of a feature store, the best
pair chosen on val, test reported once; results.json, report.md, heatmap.png, confusion.png and
a classifier bundle.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from scipy.special import softmax
from sklearn.metrics import confusion_matrix

from ..config.probe import ProbeRunConfig
from ..features.store import FeatureStore
from ..report.plots import confusion_plot, grid_heatmap
from ..report.tables import probe_report
from ..utils import DiffprobeError, write_json
from .bundle import ClassifierBundle
from .calibration import expected_calibration_error, fit_temperature, unknown_thresholds
from .linear import GridProbe
from .metrics import chance_accuracy, classification_metrics, per_class_f1

log = logging.getLogger(__name__)


def _parts(store: FeatureStore):
    masks = {s: store.splits == s for s in ("train", "val", "test")}
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


def run_probe(store: FeatureStore | str | Path, out_dir: str | Path, *, probe: GridProbe | None = None,
              bundle: bool = True, title: str = "", max_gb: float = ProbeRunConfig.max_gb) -> dict:
    """Probe every pair of ``store``; write the artifacts to ``out_dir``; return the results dict.

    Pairs are read from the memory-mapped store and probed in chunks of at most ``max_gb`` of features, so a
    store larger than RAM is probed piece by piece (a store that fits is probed in one batched pass). Under
    ``torchrun`` / ``accelerate launch`` each process probes its share of every chunk's pairs and the main
    process gathers the heads and writes the artifacts.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    out = Path(out_dir)
    state = PartialState(cpu=not torch.cuda.is_available())
    world, rank = state.num_processes, state.process_index
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    probe = probe or GridProbe()
    masks = _parts(store)
    y = {s: store.labels[m] for s, m in masks.items()}
    n_classes = len(store.classes)
    pairs = store.pairs
    t0 = time.time()

    def load(k: int) -> dict[str, np.ndarray]:
        arr = store.get(*pairs[k])
        return {s: np.asarray(arr[m], dtype=np.float32) for s, m in masks.items()}

    done = []  # (pair index, grid row, head) of this process's pairs
    for chunk in pair_chunks(store, max_gb):
        mine = chunk[rank::world]
        if not mine:
            continue
        feats = [load(k) for k in mine]
        fitted = probe.fit([f["train"] for f in feats], y["train"], [f["val"] for f in feats], y["val"], n_classes)
        for k, f, head in zip(mine, feats, fitted):
            row = {"block": pairs[k][0], "timestep": pairs[k][1]}
            for s in ("val", "test"):
                met = classification_metrics(y[s], head.logits(f[s]).argmax(1))
                row.update({f"{s}_{name}": v for name, v in met.items()})
            row.update(weight_decay=head.weight_decay, epochs=head.epochs)
            done.append((k, row, head))
        del feats
    if world > 1:
        done = gather_object(done)  # every process's pairs, in pair order below
        if not state.is_main_process:
            state.wait_for_everyone()  # leave with the main process: a rank exiting early can abort gloo
            return {}
    try:
        done.sort(key=lambda d: d[0])
        grid, heads = [d[1] for d in done], [d[2] for d in done]
        fit_s = time.time() - t0
        # Chosen on val only (accuracy, then macro F1); the test columns are reported, never consulted.
        best_i = max(range(len(grid)), key=lambda i: (grid[i]["val_accuracy"], grid[i]["val_macro_f1"]))
        best = dict(grid[best_i])
        head = heads[best_i]
        best_feats = load(best_i)

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
                      "whiten": probe.whiten, "n_pairs": len(pairs)},
            "per_class_test_f1": dict(zip(store.classes, class_f1)),
        }
        grid_heatmap(grid, out / "heatmap.png", best=best, title=title or "Linear-probe accuracy per (block, timestep)")
        confusion_plot(cm, store.classes, out / "confusion.png",
                       title=f"Test confusion, {best['block']} t={best['timestep']}")
        if bundle:
            metrics = {k: best[k] for k in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy", "val_accuracy")}
            results["bundle"] = str(save_store_bundle(out / "bundle", store, head, [(best["block"], best["timestep"])],
                                                      val_logits, temperature, metrics))
        write_json(out / "results.json", results)
        # Timings vary run to run; kept apart so results.json is identical for the same command and seed.
        write_json(out / "timing.json", {"probe_fit_seconds": round(fit_s, 2)})
        (out / "report.md").write_text(probe_report(results, fit_s))
        return results
    finally:
        if world > 1:
            state.wait_for_everyone()  # also when writing failed: the other processes are waiting here


def save_store_bundle(path: Path, store: FeatureStore, head, pairs: list[tuple[str, int]], val_logits: np.ndarray,
                      temperature: float, metrics: dict, metadata: list[str] = (),
                      train_parts: tuple[str, ...] = ("train",)) -> Path:
    """A bundle of ``head`` fitted on ``store``'s ``pairs`` (and object ``metadata``) of ``train_parts``: the
    store's model and preprocessing, the val logits' temperature, confusion and unknown thresholds, the class
    counts of the images the head learned from."""
    masks = _parts(store)
    fitted_on = np.isin(store.splits, train_parts)
    y_train, y_val, n_classes = store.labels[fitted_on], store.labels[masks["val"]], len(store.classes)
    return ClassifierBundle.save(path, model_dir=store.meta["model_dir"], head=head, meta={
        "classes": store.classes, "pairs": [[b, int(t)] for b, t in pairs], "metadata": list(metadata),
        "image_size": int(store.meta["preprocess"]["size"]), "preprocess": store.meta["preprocess"],
        "feature_spec": store.spec.to_dict(), "temperature": temperature, "metrics": metrics,
        "train_class_counts": np.bincount(y_train, minlength=n_classes).tolist(),
        **({"metadata_medians": np.median(store.metadata[fitted_on], 0).tolist()} if metadata else {}),
        # For adjusted counting (ACC) and unknown rejection at prediction time.
        "val_confusion": confusion_matrix(y_val, val_logits.argmax(1), labels=range(n_classes)).tolist(),
        "unknown": unknown_thresholds(val_logits, temperature)})

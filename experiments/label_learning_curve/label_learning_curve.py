"""Does the head still gain from more labelled images? The shipped recipe's MLP head (the top-k pairs + object
metadata) fitted on growing stratified fractions of the train part, each scored on val only.

This is the evidence for ``diffprobe fuse --refit`` (train the chosen head again on train + val): val cannot
score a head that learned from it, so whether 22% more labelled images pay is read from this curve, on val,
before test is looked at. Test is not read here.

    python experiments/label_learning_curve/label_learning_curve.py --store FEATS/features-KEY --results PROBE/results.json --k 12 \
        [--fractions 0.5,0.7,0.82,1.0] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import softmax
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from diffprobe.workflows.bench import head_inputs, machine, writer
from diffprobe.features import FeatureStore
from diffprobe.probe.calibration import fit_temperature
from diffprobe.probe.mlp import MLPProbe

write = writer(__file__)  # results/<name>.json and .md beside this script


def subsample(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of ``y`` (every class keeps at least one image)."""
    idx = np.arange(len(y))
    if fraction >= 1:
        return idx
    singles = np.isin(y, np.flatnonzero(np.bincount(y) < 2))  # classes train_test_split cannot stratify
    kept, _ = train_test_split(idx[~singles], train_size=fraction, stratify=y[~singles], random_state=seed)
    return np.sort(np.concatenate([kept, idx[singles]]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="feature store (with object metadata)")
    ap.add_argument("--results", required=True, help="the store's probe results.json (ranks the pairs)")
    ap.add_argument("--k", type=int, default=12, help="number of top pairs fused (the k fuse chose on val)")
    ap.add_argument("--fractions", default="0.5,0.7,0.82,1.0")
    ap.add_argument("--seeds", default="0,1", help="subsample and head seeds: one row per (fraction, seed)")
    ap.add_argument("--name", default="label_learning_curve")
    a = ap.parse_args()

    store = FeatureStore(a.store)
    pairs, x, y = head_inputs(store, a.results, a.k, parts=("train", "val"))
    n_classes = len(store.classes)
    rows = []
    for fraction in [float(f) for f in a.fractions.split(",")]:
        for seed in [int(s) for s in a.seeds.split(",")]:
            t0 = time.time()
            idx = subsample(y["train"], fraction, seed)
            head = MLPProbe(seed=seed).fit(x["train"][idx], y["train"][idx], x["val"], y["val"], n_classes)
            lv = head.logits(x["val"])
            t = fit_temperature(lv, y["val"])
            rows.append({"fraction": fraction, "seed": seed, "train_images": len(idx), "epoch": head.config["epoch"],
                         "val_accuracy": float((lv.argmax(1) == y["val"]).mean()),
                         "val_log_loss": float(log_loss(y["val"], np.clip(softmax(lv / t, axis=1), 1e-15, 1),
                                                        labels=range(n_classes))),
                         "seconds": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    fractions = sorted({r["fraction"] for r in rows})
    mean = {f: {k: float(np.mean([r[k] for r in rows if r["fraction"] == f])) for k in
                ("train_images", "val_accuracy", "val_log_loss")} for f in fractions}
    # Accuracy per doubling of the labelled images, from the two largest fractions: what train + val
    # (train x (1 + val/train) images) is expected to add.
    lo, hi = fractions[-2], fractions[-1]
    per_doubling = (mean[hi]["val_accuracy"] - mean[lo]["val_accuracy"]) / np.log2(hi / lo)
    n_val = len(y["val"])
    expected = per_doubling * np.log2(1 + n_val / len(y["train"]))
    r = {"store": store.path.name, "k": a.k, "machine": machine(), "rows": rows, "mean": mean,
         "val_accuracy_per_doubling": per_doubling, "expected_gain_of_train_plus_val": expected}
    md = ["# The MLP head against the number of labelled images (val only)", "",
          f"Top {a.k} pairs + object metadata, store `{store.path.name}`; stratified fractions of train, "
          f"seeds {a.seeds}.", "",
          "| fraction of train | train images | val top-1 (mean) | val log loss (mean) |", "|---|---|---|---|"]
    md += [f"| {f} | {mean[f]['train_images']:.0f} | {mean[f]['val_accuracy']:.2%} | {mean[f]['val_log_loss']:.3f} |"
           for f in fractions]
    md += ["", f"Val top-1 per doubling of the labelled images ({lo} -> {hi}): {per_doubling:+.2%}; adding the "
               f"{n_val} val images to train is expected to add {expected:+.2%}."]
    write(a.name, r, md)


if __name__ == "__main__":
    main()

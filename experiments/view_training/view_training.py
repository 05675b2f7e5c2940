"""Train the head on every view, not only on their average: the symmetry lever's second half, measured.

A bundle with ``views = 8`` averages each image's features over the 8 flips / quarter turns, for the
training images as for new ones. Here each view's features are kept apart (one file per view, so the run
resumes view by view), and the MLP head is fitted on all 8 views of every training image as separate
samples (8x the training data, each view a plausible image of the same organism), then read, like the
bundle reads, on the view-averaged features of val and test; logits averaged over the views is a
second readout. The baseline row is the same head fitted on the averaged features. Val chooses; test is
computed for the val-best row only.

    python experiments/view_training/view_training.py --bundle FUSE/bundle --split SPLIT.csv --work DIR [--epochs 20]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from diffprobe.workflows.bench import writer
from diffprobe.data.dataset import load_split_images
from diffprobe.features.extract import dihedral
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.calibration import fit_temperature
from diffprobe.probe.mlp import MLPProbe

write = writer(__file__)  # results/<name>.json and .md beside this script


def view_arrays(bundle: ClassifierBundle, images: np.ndarray, meta: np.ndarray, work: Path) -> list[np.ndarray]:
    """(N, D) head inputs of each of the 8 views, computed once per view and kept in ``work``."""
    one = replace(bundle, meta={**bundle.meta, "feature_spec": {**bundle.meta["feature_spec"], "views": 1}})
    out = []
    for v in range(8):
        path = work / f"view{v}.npy"
        if not path.is_file():
            t0 = time.time()
            x = one.features(dihedral(images, v), meta, progress=True)
            np.save(work / f"view{v}.tmp.npy", x.astype(np.float16))
            (work / f"view{v}.tmp.npy").replace(path)
            print(f"view {v}: {time.time() - t0:.0f} s", flush=True)
        out.append(np.load(path).astype(np.float32))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True, help="a bundle with views = 8 (its pairs, metadata and head settings)")
    ap.add_argument("--split", required=True, help="the split CSV the bundle was fitted on")
    ap.add_argument("--work", required=True, help="folder for the per-view features (resumable)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the head trained on all views")
    ap.add_argument("--name", default="view_training")
    a = ap.parse_args()
    bundle = ClassifierBundle.load(a.bundle)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    arr = load_split_images(a.split, bundle.preprocess, classes=bundle.classes)
    views = view_arrays(bundle, arr.images, arr.meta, work)
    m = {s: arr.splits == s for s in ("train", "val", "test")}
    y = {s: arr.labels[m[s]] for s in m}
    mean = {s: np.mean([v[m[s]] for v in views], 0) for s in m}
    n_classes = len(bundle.classes)
    cfg = bundle.meta.get("head_config", {})
    settings = dict(hidden=(cfg.get("hidden", 1024),), dropout=(cfg.get("dropout", 0.5),),
                    weight_decays=(cfg.get("weight_decay", 0.05),), seed=0)
    rows, heads = [], {}

    def score(name, head, val_logits, seconds):
        t = fit_temperature(val_logits, y["val"])
        rows.append({"row": name, "val_accuracy": float((val_logits.argmax(1) == y["val"]).mean()),
                     "val_log_loss": float(log_loss(y["val"], np.clip(softmax(val_logits / t, axis=1), 1e-15, 1),
                                                    labels=range(n_classes))),
                     "temperature": t, "seconds": round(seconds, 1)})
        heads[name] = head
        print(rows[-1], flush=True)

    t0 = time.time()
    h = MLPProbe(**settings, epochs=40).fit(mean["train"], y["train"], mean["val"], y["val"], n_classes)
    score("head on averaged features (the bundle's recipe)", h, h.logits(mean["val"]), time.time() - t0)
    t0 = time.time()
    x_all = np.concatenate([v[m["train"]] for v in views])
    h = MLPProbe(**settings, epochs=a.epochs).fit(x_all, np.tile(y["train"], 8), mean["val"], y["val"], n_classes)
    seconds = time.time() - t0
    score("head on every view, read on averaged features", h, h.logits(mean["val"]), seconds)

    def view_mean_logits(head, s):
        return np.mean([head.logits(v[m[s]]) for v in views], 0)

    score("head on every view, logits averaged over views", h, view_mean_logits(h, "val"), seconds)
    best = max(rows, key=lambda r: (r["val_accuracy"], -r["val_log_loss"]))
    head = heads[best["row"]]
    logits = view_mean_logits(head, "test") if "logits averaged" in best["row"] else head.logits(mean["test"])
    p = softmax(logits / best["temperature"], axis=1)
    chosen = {**best, "test_accuracy": float((p.argmax(1) == y["test"]).mean()),
              "test_macro_f1": float(f1_score(y["test"], p.argmax(1), average="macro", zero_division=0)),
              "test_log_loss": float(log_loss(y["test"], np.clip(p, 1e-15, 1), labels=range(n_classes)))}
    md = ["# Training the head on every view (val chooses; test read once, for the chosen row)", "",
          "| readout | val acc | val log loss | fit s |", "|---|---|---|---|"]
    md += [f"| {r['row']}{' **(chosen)**' if r is best else ''} | {r['val_accuracy']:.2%} | {r['val_log_loss']:.3f} "
           f"| {r['seconds']:.0f} |" for r in rows]
    md += ["", f"Chosen row on test: top-1 {chosen['test_accuracy']:.2%}, macro F1 {chosen['test_macro_f1']:.3f}, "
               f"log loss {chosen['test_log_loss']:.3f}."]
    write(a.name, {"bundle_pairs": bundle.meta["pairs"], "head": settings, "epochs_all_views": a.epochs,
                   "rows": rows, "chosen": chosen}, md)


if __name__ == "__main__":
    main()

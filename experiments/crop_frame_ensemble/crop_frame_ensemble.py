"""Two readings of each image, one head each: features of the image cut to its organism and of the image as
framed (the same backbone, two ``diffprobe features`` stores, ``--crop`` and ``--no-crop``), a fused MLP head
fitted on each (train only, early-stopped on val, the recipe's settings: the top-k pairs + object metadata),
and their geometric mean (log-probabilities averaged, renormalised: the ranking of their product, calibrated
like each head), against one head on both stores' inputs side by side. Val compares; each row's test is
read once. The cost: two feature extractions instead of one.

    python experiments/crop_frame_ensemble/crop_frame_ensemble.py --crop STORE --crop-results PROBE/results.json \\
        --frame STORE --frame-results PROBE/results.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from diffprobe.workflows.bench import head_inputs, machine, shipped_head_probe, writer
from scipy.special import log_softmax

from diffprobe.features.store import FeatureStore
from diffprobe.probe.metrics import classification_metrics, multiclass_log_loss

write = writer(__file__)  # results/<name>.json and .md beside this script


def extraction_seconds(store: FeatureStore) -> float:
    """The features stage's time, from its files: the split it writes first to the store's meta.json, written
    last (the stage records no timing of its own)."""
    return (store.path / "meta.json").stat().st_mtime - (store.path.parent / "split.json").stat().st_mtime


def grid_seconds(results: str) -> float:
    """The linear grid's fit time, from the timing.json beside its results.json."""
    return json.loads((Path(results).parent / "timing.json").read_text())["probe_fit_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crop", required=True, help="feature store of the images cut to their organism")
    ap.add_argument("--crop-results", required=True, help="its linear grid's results.json (ranks the pairs)")
    ap.add_argument("--frame", required=True, help="feature store of the same images as framed")
    ap.add_argument("--frame-results", required=True)
    ap.add_argument("--k", type=int, default=12, help="pairs fused per store")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="crop_frame_ensemble")
    a = ap.parse_args()
    crop, frame = FeatureStore(a.crop), FeatureStore(a.frame)
    if not (np.array_equal(crop.labels, frame.labels) and np.array_equal(crop.splits, frame.splits)):
        raise SystemExit("the two stores hold other images or another split")
    _, xc, y = head_inputs(crop, a.crop_results, a.k)
    _, xf, _ = head_inputs(frame, a.frame_results, a.k)
    n_classes = int(crop.labels.max()) + 1

    def fit(x):
        t = time.time()
        head = shipped_head_probe(a.seed).fit(
            x["train"], y["train"], x["val"], y["val"], n_classes=n_classes)
        return {s: log_softmax(head.logits(x[s]), axis=1) for s in ("val", "test")}, time.time() - t

    logp, secs = {}, {}
    logp["crop"], secs["crop"] = fit(xc)
    logp["frame"], secs["frame"] = fit(xf)
    logp["crop + frame"] = {s: log_softmax((logp["crop"][s] + logp["frame"][s]) / 2, axis=1)
                            for s in ("val", "test")}
    secs["crop + frame"] = secs["crop"] + secs["frame"]
    logp["one head on both"], secs["one head on both"] = fit({s: np.concatenate([xc[s], xf[s]], 1) for s in xc})
    rows = {}
    for name, lp in logp.items():
        row = {"fit_seconds": round(secs[name], 1)}
        for s in ("val", "test"):
            met = classification_metrics(y[s], lp[s].argmax(1))
            row.update({f"{s}_accuracy": met["accuracy"], f"{s}_macro_f1": met["macro_f1"],
                        f"{s}_log_loss": multiclass_log_loss(y[s], np.exp(lp[s]))})
        rows[name] = row
        print(name, row, flush=True)
    table = ["| head(s) | features read | val top-1 | val log loss | test top-1 | test macro F1 | test log loss |",
             "|---" * 7 + "|"]
    reads = {"crop": "cut to organism", "frame": "as framed",
             "crop + frame": "both (2 extractions), log-probabilities averaged",
             "one head on both": "both (2 extractions)"}
    for name, r in rows.items():
        table.append(f"| {name} | {reads[name]} | {r['val_accuracy']:.2%} | {r['val_log_loss']:.3f} | "
                     f"{r['test_accuracy']:.2%} | {r['test_macro_f1']:.3f} | {r['test_log_loss']:.3f} |")
    table += ["", f"Heads fitted on train only (k = {a.k} pairs per store + object metadata); log losses without "
              f"temperature scaling; {machine()['cpu']}, head training in {machine()['precision_auto']}."]
    stages = {"features_crop": extraction_seconds(crop), "features_frame": extraction_seconds(frame),
              "grid_crop": grid_seconds(a.crop_results), "grid_frame": grid_seconds(a.frame_results)}
    write(a.name, {"crop_store": crop.path.name, "frame_store": frame.path.name, "views": crop.spec.views,
                   "blocks": [crop.blocks, frame.blocks], "k": a.k, "stages_s": stages, "rows": rows}, table)


if __name__ == "__main__":
    main()

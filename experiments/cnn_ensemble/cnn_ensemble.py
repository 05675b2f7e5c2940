"""Does averaging several classifiers pay on NDSB? Each bundle (a head fitted on train only, calibrated on val)
reads the val images in the given number of views; the ensemble is the mean of their calibrated log-probabilities
(what ``ReadingEnsemble`` computes). Val only: this chooses, the test split is not read.

    python experiments/cnn_ensemble/cnn_ensemble.py --split SPLIT.csv --bundle A --bundle B [--views 1 8] \
        --out experiments/cnn_ensemble/results/cnn_ensemble.json
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from scipy.special import log_softmax

from diffprobe.data.manifest import open_dataset
from diffprobe.evaluate.crossdata import select_part
from diffprobe.probe.ensemble import load_bundle
from diffprobe.probe.metrics import classification_metrics, multiclass_log_loss
from diffprobe.utils import cpu_name, write_json


def val_log_probs(path: str, manifest, views: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Calibrated log-probabilities (N, C) of the val images, their labels (N,) and the bundle's classes."""
    bundle = load_bundle(path, views=views)
    images, meta, ok, skipped = bundle.load_paths([manifest.full_path(i) for i in range(len(manifest))])
    if skipped:
        raise SystemExit(f"{path}: {len(skipped)} val images unreadable, e.g. {skipped[0]}")
    y = np.array([bundle.classes.index(c) for c in manifest.labels])
    return log_softmax(bundle.logits(images, meta) / bundle.temperature, axis=1), y, bundle.classes


def scores(log_p: np.ndarray, y: np.ndarray) -> dict:
    m = classification_metrics(y, log_p.argmax(1))
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "log_loss": multiclass_log_loss(y, np.exp(log_p))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", required=True)
    ap.add_argument("--bundle", action="append", required=True, help="a train-only bundle (repeat)")
    ap.add_argument("--views", type=int, nargs="+", default=[1])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    val = select_part(open_dataset(a.split), "val", a.split)
    rows = []
    for views in a.views:
        read = {b: val_log_probs(b, val, views) for b in a.bundle}
        classes = {tuple(c) for _, _, c in read.values()}
        if len(classes) != 1:
            raise SystemExit("the bundles do not share their classes")
        y = next(iter(read.values()))[1]
        for r in range(1, len(a.bundle) + 1):
            for members in itertools.combinations(a.bundle, r):
                rows.append({"views": views, "members": list(members),
                             **scores(np.mean([read[b][0] for b in members], axis=0), y)})
                print(rows[-1], flush=True)
    write_json(Path(a.out), {"split": "val", "n_images": len(val.paths), "rows": rows, "machine": cpu_name()})


if __name__ == "__main__":
    main()

"""The object measurements beside the frozen features, measured on NDSB val: the sizes alone (the recipe before)
against sizes + shape (``data.measurements.SHAPE_NAMES``), at several weights of the measurements in the MLP head
(``fuse --metadata-weight``: their standardised columns multiplied before the head, ``MLPProbe.fit(tail=...)``).

The shipped head's settings on the top-k pairs of a probed store that holds every measurement; each row fitted
on train and early-stopped on val, for two seeds (the seed-to-seed spread is about as large as some gaps). Val
only: this chose ``FusionConfig.metadata_weight``; test is read once, by ``diffprobe fuse``, for the recipe.

    python experiments/shape_metadata/shape_metadata.py --store FEATS/features-KEY --results PROBE/results.json --k 12
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from diffprobe.workflows.bench import shipped_head_probe, writer
from diffprobe.data.measurements import METADATA_NAMES, SIZE_NAMES, select_metadata
from diffprobe.features import FeatureStore
from diffprobe.probe.fusion import rank_pairs
from diffprobe.utils import read_json

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="feature store holding every measurement of this version")
    ap.add_argument("--results", required=True, help="the store's probe results.json (ranks the pairs)")
    ap.add_argument("--k", type=int, default=12, help="number of top pairs fused")
    ap.add_argument("--weights", default="1,2,4,8", help="weights tried with sizes + shape")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--name", default="shape_metadata")
    a = ap.parse_args()

    store = FeatureStore(a.store)
    if store.metadata_names != list(METADATA_NAMES):
        raise SystemExit(f"{store.path} holds {len(store.metadata_names)} measurements, not all "
                         f"{len(METADATA_NAMES)}: extract it again with this version")
    m = {s: store.splits == s for s in ("train", "val")}
    pairs = [p for p in rank_pairs(read_json(a.results)) if p in set(store.pairs)][: a.k]
    feats = np.concatenate([np.asarray(store.get(b, t), np.float32) for b, t in pairs], 1)
    y = {s: store.labels[m[s]] for s in m}
    variants = [("sizes", 1.0), ("sizes", 4.0)] + [("sizes + shape", float(w)) for w in a.weights.split(",")]
    rows = []
    for measured, weight in variants:
        names = SIZE_NAMES if measured == "sizes" else METADATA_NAMES
        x = np.concatenate([feats, select_metadata(store.metadata, names)], 1)
        for seed in (int(s) for s in a.seeds.split(",")):
            t0 = time.time()
            head = shipped_head_probe(seed).fit(x[m["train"]], y["train"], x[m["val"]], y["val"], len(store.classes),
                                                tail=(len(names), weight))
            rows.append({"measurements": measured, "n_measurements": len(names), "weight": weight, "seed": seed,
                         "epoch": head.config["epoch"], "val_accuracy": head.config["val_accuracy"],
                         "val_log_loss": head.config["val_log_loss"], "seconds": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    md = ["# Object measurements beside the features: which, and how much weight (NDSB val)", "",
          f"Top {a.k} pairs of `{store.path.name}` + the measurements; the shipped head's settings; "
          "val accuracy and log loss (before temperature) per seed, and their mean.", "",
          "| measurements | weight | val top-1 (seeds) | mean | val log loss (mean) |", "|---|---|---|---|---|"]
    for measured, weight in variants:
        rs = [r for r in rows if r["measurements"] == measured and r["weight"] == weight]
        md.append(f"| {measured} ({rs[0]['n_measurements']}) | {weight:g} | "
                  + " / ".join(f"{r['val_accuracy']:.2%}" for r in rs)
                  + f" | {np.mean([r['val_accuracy'] for r in rs]):.2%} | {np.mean([r['val_log_loss'] for r in rs]):.3f} |")
    write(a.name, {"store": store.path.name, "k": a.k, "pairs": [f"{b} t={t}" for b, t in pairs], "rows": rows}, md)


if __name__ == "__main__":
    main()

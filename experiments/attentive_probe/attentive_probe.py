"""Readouts richer than one global average: the attentive probe over a map's spatial tokens, measured.

The accuracy issue's third lever. One feature store with ``--pooling grid8`` (an 8 x 8 average grid of
every map, 1 view) gives, per (block, timestep) pair, exactly the global average (the mean of the 64
cells), a 4 x 4 grid (2 x 2 cells averaged: 16 tokens) and the 8 x 8 grid (64 tokens). Rows per pair: the
paper's linear probe on the average, and the attentive probe (``probe.attentive``) on 16 tokens (and on 64
tokens for the first ``--grid8-pairs``).
Then the pairs together: an MLP head on their averages against one attentive probe over all their
16-token grids, both with the object's size measurements (``data.measurements``). Val chooses; test is reported for every row (no row's choice reads it). Each row's result
is kept in ``--work`` so the run resumes row by row.

    diffprobe features --model MODEL --data SPLIT.csv --out STORES --timesteps 1,10 \
        --blocks down2,mid,up0,up1 --pooling grid8 --views 1
    python experiments/attentive_probe/attentive_probe.py --store STORES/features-XXXX --work DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from diffprobe.workflows.bench import writer
from diffprobe.features.store import FeatureStore
from diffprobe.probe.attentive import AttentiveProbe, grid_tokens
from diffprobe.probe.linear import GridProbe
from diffprobe.probe.mlp import MLPProbe

write = writer(__file__)  # results/<name>.json and .md beside this script


def scores(logits: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    p = softmax(logits, axis=1)
    return {"accuracy": float((p.argmax(1) == y).mean()), "macro_f1": float(f1_score(y, p.argmax(1), average="macro")),
            "log_loss": float(log_loss(y, p, labels=np.arange(n_classes)))}


def coarsen(tokens: np.ndarray) -> np.ndarray:
    """(N, 64, C) tokens of an 8 x 8 grid -> (N, 16, C) of the 4 x 4 grid (each cell the mean of 2 x 2)."""
    n, _, c = tokens.shape
    g = tokens.reshape(n, 4, 2, 4, 2, c).mean((2, 4))
    return g.reshape(n, 16, c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="a feature store made with --pooling grid8")
    ap.add_argument("--work", required=True, help="folder for the per-row results (resumable)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--per-pair", type=int, default=None,
                    help="per-pair rows for the first this many pairs only (default all); the fused rows read all")
    ap.add_argument("--grid8-pairs", type=int, default=1,
                    help="the 64-token row for this many pairs, in the store's order (4x the 16-token row's cost)")
    ap.add_argument("--name", default="attentive_probe")
    a = ap.parse_args()
    store = FeatureStore(a.store)
    if store.spec.pooling != "grid8":
        raise SystemExit(f"{a.store} was made with pooling {store.spec.pooling!r}: this benchmark reads grid8")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    y, splits = store.labels, store.splits
    n_classes = len(store.classes)
    parts = {s: splits == s for s in ("train", "val", "test")}

    def row(key: str, fit):
        path = work / f"{key}.json"
        if not path.is_file():
            t0 = time.time()
            logits, extra = fit()
            res = {"row": key, **{f"{s}_{k}": v for s in ("val", "test")
                                  for k, v in scores(logits[s], y[parts[s]], n_classes).items()},
                   "fit_s": round(time.time() - t0, 1), **extra}
            path.write_text(json.dumps(res, indent=1))
            print(json.dumps(res), flush=True)
        return json.loads(path.read_text())

    meta = store.metadata

    def attentive(tokens: np.ndarray, groups: int = 1, extra: np.ndarray | None = None, **settings):
        probe = AttentiveProbe(epochs=a.epochs, **settings)
        part = {s: None if extra is None else extra[parts[s]] for s in parts}
        head = probe.fit(tokens[parts["train"]], y[parts["train"]], tokens[parts["val"]], y[parts["val"]], n_classes,
                         groups=groups, extra_train=part["train"], extra_val=part["val"])
        return {s: head.logits(tokens[parts[s]], part[s]) for s in ("val", "test")}, {"epoch": head.config["epoch"]}

    def linear(x: np.ndarray):
        head = GridProbe().fit([x[parts["train"]]], y[parts["train"]], [x[parts["val"]]], y[parts["val"]], n_classes)[0]
        return {s: head.logits(x[parts[s]]) for s in ("val", "test")}, {"weight_decay": head.weight_decay}

    def mlp(x: np.ndarray):
        head = MLPProbe().fit(x[parts["train"]], y[parts["train"]], x[parts["val"]], y[parts["val"]], n_classes)
        return {s: head.logits(x[parts[s]]) for s in ("val", "test")}, {"epoch": head.config["epoch"]}

    rows, averages, grids = [], [], []
    for b, t in store.pairs:
        tokens = grid_tokens(np.asarray(store.get(b, t)), 8)
        averages.append(tokens.mean(1))
        grids.append(coarsen(tokens))
        if a.per_pair is not None and len(averages) > a.per_pair:
            continue
        name = f"{b} t={t}"
        rows.append({"readout": f"{name}: linear on the global average (paper)",
                     **row(f"{b}_t{t}_linear_avg", lambda: linear(averages[-1]))})
        rows.append({"readout": f"{name}: MLP head on the global average (is the gain spatial or non-linear?)",
                     **row(f"{b}_t{t}_mlp_avg", lambda: mlp(averages[-1]))})
        rows.append({"readout": f"{name}: attentive, 4x4 grid (16 tokens)",
                     **row(f"{b}_t{t}_attentive_grid4", lambda: attentive(grids[-1]))})
        if len(averages) <= a.grid8_pairs:
            rows.append({"readout": f"{name}: attentive, 8x8 grid (64 tokens)",
                         **row(f"{b}_t{t}_attentive_grid8", lambda: attentive(tokens))})
        del tokens
    n = len(store.pairs)
    rows.append({"readout": f"{n} pairs + sizes: MLP head on the averages (the bundle's head, 1 view)",
                 **row("all_mlp_avg_meta", lambda: mlp(np.concatenate(averages + [meta], 1)))})
    rows.append({"readout": f"{n} pairs + sizes: one attentive probe over their 4x4 grids ({16 * n} tokens)",
                 **row("all_attentive_grid4_meta", lambda: attentive(np.concatenate(grids, 1), n, meta))})
    rows.append({"readout": f"{n} pairs + sizes: attentive reads (8 queries) and the averages into the MLP head's "
                 "hidden layer (1024)",
                 **row("all_attentive_mlp_grid4_meta",
                       lambda: attentive(np.concatenate(grids, 1), n, meta, n_queries=8, hidden=1024, dropout=0.5))})

    table = ["# Attentive probe on spatial tokens against global-average readouts (1 view)", "",
             f"Store: {store.spec.to_dict()} ({len(y)} images; val chooses each probe's epoch or weight decay; "
             "test is shown for every row, no choice reads it).", "",
             "| readout | val acc | test acc | test macro F1 | test log loss | fit s |", "|---|---|---|---|---|---|"]
    table += [f"| {r['readout']} | {r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.3f} | "
              f"{r['test_log_loss']:.3f} | {r['fit_s']:.0f} |" for r in rows]
    write(a.name, {"store": store.spec.to_dict(), "rows": rows}, table)


if __name__ == "__main__":
    main()

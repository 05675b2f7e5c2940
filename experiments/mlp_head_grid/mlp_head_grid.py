"""The MLP head's own settings, measured on NDSB: one row per (hidden, dropout, input dropout, label
smoothing), on the shipped recipe's inputs (the top-k pairs of a probed store + object metadata).

Every row is fitted on train and early-stopped on val; the row with the best val accuracy (ties: val log
loss after temperature scaling) is the one chosen, and only its test metrics are computed (test is read
once). The per-row val numbers and fitting seconds go to ``results/<name>.json`` and ``.md``.

    python experiments/mlp_head_grid/mlp_head_grid.py --store FEATS/features-KEY --results PROBE/results.json --k 12 \
        [--hidden 1024,2048] [--dropout 0.5,0.7] [--input-dropout 0.1,0.3] [--label-smoothing 0,0.1]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from diffprobe.workflows.bench import head_inputs, writer
from diffprobe.features import FeatureStore
from diffprobe.probe.calibration import fit_temperature
from diffprobe.probe.mlp import MLPProbe

write = writer(__file__)  # results/<name>.json and .md beside this script


def floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="feature store (with object metadata)")
    ap.add_argument("--results", required=True, help="the store's probe results.json (ranks the pairs)")
    ap.add_argument("--k", type=int, default=12, help="number of top pairs fused")
    ap.add_argument("--hidden", default="1024,2048")
    ap.add_argument("--dropout", default="0.5,0.7")
    ap.add_argument("--input-dropout", default="0.1,0.3")
    ap.add_argument("--label-smoothing", default="0,0.1")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="mlp_head_grid")
    a = ap.parse_args()

    store = FeatureStore(a.store)
    pairs, x, y = head_inputs(store, a.results, a.k)
    n_classes = len(store.classes)
    rows, heads = [], []
    grid = itertools.product([int(h) for h in floats(a.hidden)], floats(a.dropout), floats(a.input_dropout),
                             floats(a.label_smoothing))
    for hidden, dropout, input_dropout, smoothing in grid:
        t0 = time.time()
        head = MLPProbe(hidden=(hidden,), dropout=(dropout,), input_dropout=input_dropout,
                        label_smoothing=smoothing, epochs=a.epochs, seed=a.seed).fit(
            x["train"], y["train"], x["val"], y["val"], n_classes)
        lv = head.logits(x["val"])
        t = fit_temperature(lv, y["val"])
        row = {"hidden": hidden, "dropout": dropout, "input_dropout": input_dropout, "label_smoothing": smoothing,
               "epoch": head.config["epoch"], "val_accuracy": float((lv.argmax(1) == y["val"]).mean()),
               "val_macro_f1": float(f1_score(y["val"], lv.argmax(1), average="macro", zero_division=0)),
               "val_log_loss": float(log_loss(y["val"], np.clip(softmax(lv / t, axis=1), 1e-15, 1),
                                              labels=range(n_classes))),
               "temperature": t, "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        heads.append((head, t))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    best_i = max(range(len(rows)), key=lambda i: (rows[i]["val_accuracy"], -rows[i]["val_log_loss"]))
    head, t = heads[best_i]
    p = softmax(head.logits(x["test"]) / t, axis=1)
    chosen = {**rows[best_i], "test_accuracy": float((p.argmax(1) == y["test"]).mean()),
              "test_macro_f1": float(f1_score(y["test"], p.argmax(1), average="macro", zero_division=0)),
              "test_log_loss": float(log_loss(y["test"], np.clip(p, 1e-15, 1), labels=range(n_classes)))}
    r = {"store": store.path.name, "k": a.k, "pairs": [f"{b} t={t}" for b, t in pairs], "dim": x["val"].shape[1],
         "epochs": a.epochs, "seed": a.seed, "rows": rows, "chosen": chosen}
    md = ["# MLP head settings (val chooses; test read once, for the chosen row)", "",
          f"Inputs: top {a.k} pairs + object metadata ({r['dim']} dims), store `{store.path.name}`.", "",
          "| hidden | dropout | input dropout | label smoothing | epoch | val acc | val macro F1 | val log loss | s |",
          "|---|---|---|---|---|---|---|---|---|"]
    for i, row in enumerate(rows):
        mark = " **(chosen)**" if i == best_i else ""
        md.append(f"| {row['hidden']}{mark} | {row['dropout']} | {row['input_dropout']} | {row['label_smoothing']} | "
                  f"{row['epoch']} | {row['val_accuracy']:.2%} | {row['val_macro_f1']:.3f} | {row['val_log_loss']:.3f} "
                  f"| {row['seconds']:.0f} |")
    md += ["", f"Chosen row on test: top-1 {chosen['test_accuracy']:.2%}, macro F1 {chosen['test_macro_f1']:.3f}, "
               f"log loss {chosen['test_log_loss']:.3f}."]
    write(a.name, r, md)


if __name__ == "__main__":
    main()

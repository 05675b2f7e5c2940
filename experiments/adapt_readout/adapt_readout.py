"""Few-shot adaptation to classes the source head never saw: does the source MLP head's hidden layer carry over?

The shipped recipe's fused inputs (top-12 pairs + object metadata, cached features of a probed store). Classes are
split at random into source classes (the MLP head is trained on their train images, early-stopped on their val
images, with the recipe's settings) and held-out classes (31 of 121). The held-out classes are then adapted to
from k labelled images each (drawn from their train + val images), and tested on their test images: a logistic
regression on the features, on the source head's hidden layer, and the choice between them that ``adapt`` makes
(``probe.readout.fit_readout``), over several draws. The app's case: the same instrument, classes the model
does not know.

    python experiments/adapt_readout/adapt_readout.py --features STORE --results PROBE/results.json [--shots 2,5,10,20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from diffprobe.workflows.bench import head_inputs, machine, shipped_head_probe, writer

from diffprobe.features.store import FeatureStore
from diffprobe.probe.metrics import classification_metrics
from diffprobe.probe.readout import fit_readout
from diffprobe.workflows.config import READOUTS

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", required=True)
    ap.add_argument("--results", required=True, help="the linear grid's results.json (ranks the pairs)")
    ap.add_argument("--k", type=int, default=12, help="pairs fused, as the recipe")
    ap.add_argument("--held-out", type=int, default=31)
    ap.add_argument("--shots", default="2,5,10,20")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="adapt_readout")
    a = ap.parse_args()
    store = FeatureStore(a.features)
    pairs, x, y = head_inputs(store, a.results, a.k)
    n_classes = int(store.labels.max()) + 1
    held = np.sort(np.random.default_rng(a.seed).choice(n_classes, a.held_out, replace=False))
    source = np.setdiff1d(np.arange(n_classes), held)
    remap = np.full(n_classes, -1)
    remap[source] = np.arange(len(source))
    on = {s: np.isin(y[s], source) for s in x}
    t0 = time.time()
    head = shipped_head_probe(a.seed).fit(
        x["train"][on["train"]], remap[y["train"][on["train"]]], x["val"][on["val"]], remap[y["val"][on["val"]]],
        n_classes=len(source))
    head_seconds = time.time() - t0
    source_val = classification_metrics(remap[y["val"][on["val"]]], head.logits(x["val"][on["val"]]).argmax(1))
    print(f"source head on {len(source)} classes: val {source_val['accuracy']:.3f} ({head_seconds:.0f} s)", flush=True)

    new = {s: np.isin(y[s], held) for s in x}
    inv = {c: i for i, c in enumerate(held)}
    pool_x = np.concatenate([x["train"][new["train"]], x["val"][new["val"]]])
    pool_y = np.array([inv[c] for c in np.concatenate([y["train"][new["train"]], y["val"][new["val"]]])])
    test_x, test_y = x["test"][new["test"]], np.array([inv[c] for c in y["test"][new["test"]]])
    rows = {}
    for k in (int(s) for s in a.shots.split(",")):
        for readout in READOUTS:
            f1s, accs, secs, used = [], [], [], []
            for d in range(a.draws):
                rng = np.random.default_rng(1000 * k + d)
                tr = np.concatenate([rng.choice(np.flatnonzero(pool_y == c), min(k, (pool_y == c).sum()),
                                                replace=False) for c in range(len(held))])
                t = time.time()
                adapted, _, _, which = fit_readout(head, pool_x[tr], pool_y[tr], readout=readout, seed=d)
                secs.append(time.time() - t)
                met = classification_metrics(test_y, adapted.logits(test_x).argmax(1))
                f1s.append(met["macro_f1"])
                accs.append(met["accuracy"])
                used.append(which)
            rows[f"{k}/{readout}"] = {"shots": k, "readout": readout, "macro_f1_mean": float(np.mean(f1s)),
                                      "macro_f1_std": float(np.std(f1s)), "accuracy_mean": float(np.mean(accs)),
                                      "accuracy_std": float(np.std(accs)), "fit_seconds_mean": float(np.mean(secs)),
                                      "hidden_chosen": used.count("hidden")}
            print(k, readout, rows[f"{k}/{readout}"], flush=True)
    table = ["| labels per new class | readout | top-1 | macro F1 | fit s | auto chose hidden |", "|---" * 6 + "|"]
    for r in rows.values():
        table.append(f"| {r['shots']} | {r['readout']} | {r['accuracy_mean']:.1%} +- {r['accuracy_std']:.1%} | "
                     f"{r['macro_f1_mean']:.3f} +- {r['macro_f1_std']:.3f} | {r['fit_seconds_mean']:.1f} | "
                     + (f"{r['hidden_chosen']}/{a.draws}" if r["readout"] == "auto" else "") + " |")
    table.append("")
    table.append(f"{len(held)} held-out classes, {len(test_y)} of their test images; source head on the other "
                 f"{len(source)} classes' train images (val top-1 {source_val['accuracy']:.1%} on their val images); "
                 f"{a.draws} draws per row; {machine()['cpu']}, {machine()['precision_auto']} head training.")
    write(a.name, {"machine": machine(), "pairs": [list(p) for p in pairs], "held_out_classes": held.tolist(),
                   "source_head_val": source_val, "source_head_seconds": head_seconds, "rows": rows}, table)


if __name__ == "__main__":
    main()

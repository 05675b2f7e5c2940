"""The accuracy ablation on NDSB: one row per readout lever, on one backbone, one split, val choosing.

Rows (each adds one lever to the row above, except the first two):
  1. linear probe, best single (block, timestep), average pooling: the paper's protocol
  2. same, avg+max pooling
  3. linear probe on the top-k pairs concatenated (k chosen on val)
  4. + object size / shape metadata (``data.measurements``)
  5. MLP head (``probe.mlp``) on the same inputs
  6. + test-time augmentation: features averaged over ``--views`` flips / quarter turns (needs ``--store-views``)
  7. + an ensemble of ``--ensemble`` MLP heads (seeds 0..N-1) averaged into one head, on the row-6 inputs

Every row reports val accuracy (what chooses), then test top-1, macro F1 and multi-class log loss (the
2015 competition's metric; temperature fitted on val), each read once. The seconds column is the probe's
fitting time on this machine; the features' extraction time is in the stores' own timing (``--extract-s``).

    python experiments/accuracy_levers/accuracy_levers.py --model RUN --split RUN/split.csv --store FEATS/features-KEY \
        [--store-views FEATS/features-KEY8] [--name accuracy_levers]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score, log_loss

from diffprobe.workflows.bench import machine, writer
from diffprobe.features import FeatureStore
from diffprobe.data.dataset import load_split_images, model_preprocess
from diffprobe.probe import GridProbe
from diffprobe.probe.calibration import fit_temperature
from diffprobe.probe.mlp import MLPProbe

write = writer(__file__)  # results/<name>.json and .md beside this script


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def scores(logits_val, y_val, logits_test, y_test, n_classes) -> dict:
    t = fit_temperature(logits_val, y_val)
    p = softmax(logits_test / t)
    return {"val_accuracy": float((logits_val.argmax(1) == y_val).mean()),
            "test_accuracy": float((p.argmax(1) == y_test).mean()),
            "test_macro_f1": float(f1_score(y_test, p.argmax(1), average="macro", zero_division=0)),
            "test_log_loss": float(log_loss(y_test, np.clip(p, 1e-15, 1), labels=range(n_classes))),
            "temperature": t}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="backbone run folder (for its preprocessing)")
    ap.add_argument("--split", required=True, help="the split CSV the store was extracted from")
    ap.add_argument("--store", required=True, help="feature store with avgmax pooling, views=1")
    ap.add_argument("--store-views", help="the same pairs with views > 1 (test-time augmentation)")
    ap.add_argument("--ks", default="2,3,4,6", help="numbers of fused pairs to try")
    ap.add_argument("--extract-s", type=float, help="seconds the store took to extract (for the table)")
    ap.add_argument("--ensemble", type=int, default=5, help="MLP heads averaged in the last row")
    ap.add_argument("--name", default="accuracy_levers")
    a = ap.parse_args()

    store = FeatureStore(a.store)
    y, splits = store.labels, store.splits
    m = {s: splits == s for s in ("train", "val", "test")}
    n_classes = len(store.classes)
    arr = load_split_images(a.split, model_preprocess(a.model), classes=store.classes)
    if list(map(str, arr.paths)) != [str(p) for p in __import__("json").load(open(f"{a.store}/paths.json"))]:
        raise SystemExit("the split's images are not the store's: pass the split the store was made from")
    meta = arr.meta
    rows = []

    def add(name, **r):
        rows.append({"row": name, **r})
        print(f"{name:<55} val {r['val_accuracy']:.4f} test {r['test_accuracy']:.4f} F1 {r['test_macro_f1']:.3f} "
              f"logloss {r['test_log_loss']:.3f} ({r['seconds']:.0f} s)", flush=True)

    def part(x, s):
        return np.asarray(x[m[s]], np.float32)

    dims = store.dims
    pairs = store.pairs

    def avg(b, t):  # avgmax stores hold the average in the first half of the columns
        return np.asarray(store.get(b, t))[:, : dims[b] // 2]

    # rows 1-2: one linear probe per pair, best pair chosen on val
    ranked = {}
    for pooling, get in (("avg", avg), ("avgmax", lambda b, t: np.asarray(store.get(b, t)))):
        t0 = time.time()
        feats = [get(b, t) for b, t in pairs]
        heads = GridProbe(seed=0).fit([part(f, "train") for f in feats], y[m["train"]],
                                      [part(f, "val") for f in feats], y[m["val"]], n_classes)
        val_acc = [float((h.logits(part(f, "val")).argmax(1) == y[m["val"]]).mean()) for h, f in zip(heads, feats)]
        order = np.argsort(val_acc)[::-1]
        ranked[pooling] = [pairs[i] for i in order]
        i = int(order[0])
        add(f"linear, best pair ({pairs[i][0]} t={pairs[i][1]}), {pooling} pooling",
            **scores(heads[i].logits(part(feats[i], "val")), y[m["val"]], heads[i].logits(part(feats[i], "test")),
                     y[m["test"]], n_classes), pairs=[list(pairs[i])], seconds=time.time() - t0)

    def fused(k, with_meta, src=store):
        cols = [np.asarray(src.get(b, t)) for b, t in ranked["avgmax"][:k]] + ([meta] if with_meta else [])
        return np.concatenate(cols, axis=1)

    def linear_row(name, build, ks):
        t0 = time.time()
        cands = []
        for k in ks:
            x = build(k)
            h = GridProbe(seed=0).fit([part(x, "train")], y[m["train"]], [part(x, "val")], y[m["val"]], n_classes)[0]
            lv = h.logits(part(x, "val"))
            cands.append((float((lv.argmax(1) == y[m["val"]]).mean()), k, h, x))
        acc, k, h, x = max(cands, key=lambda c: c[0])
        add(f"{name} (k={k} chosen on val)", **scores(h.logits(part(x, "val")), y[m["val"]],
                                                      h.logits(part(x, "test")), y[m["test"]], n_classes),
            pairs=[list(p) for p in ranked["avgmax"][:k]], k=k, seconds=time.time() - t0)
        return k

    ks = [int(k) for k in a.ks.split(",")]
    linear_row("linear, top-k pairs fused, avgmax", lambda k: fused(k, False), ks)
    k_meta = linear_row("linear, top-k pairs fused + metadata", lambda k: fused(k, True), ks)

    def mlp_row(name, x, k, ensemble=1):
        t0 = time.time()
        probe = MLPProbe(seed=0, ensemble=ensemble)
        head = probe.fit(part(x, "train"), y[m["train"]], part(x, "val"), y[m["val"]], n_classes)
        add(name, **scores(head.logits(part(x, "val")), y[m["val"]], head.logits(part(x, "test")), y[m["test"]],
                           n_classes), pairs=[list(p) for p in ranked["avgmax"][:k]], k=k, head=head.config,
            grid=probe.history_, seconds=time.time() - t0)

    mlp_row(f"MLP head, top-{k_meta} pairs + metadata", fused(k_meta, True), k_meta)
    if a.store_views:
        sv = FeatureStore(a.store_views)
        have = set(sv.pairs)
        k = max(i for i in range(1, len(ranked["avgmax"]) + 1) if set(ranked["avgmax"][:i]) <= have)
        views = sv.meta["spec"]["views"]
        mlp_row(f"MLP head, top-{k} pairs + metadata, 1 view", fused(k, True), k)  # the same inputs without TTA
        mlp_row(f"MLP head, top-{k} pairs + metadata, {views} views", fused(k, True, sv), k)
        mlp_row(f"{a.ensemble} MLP heads averaged, top-{k} pairs + metadata, {views} views", fused(k, True, sv), k,
                ensemble=a.ensemble)

    write(a.name, {"machine": machine(), "store": a.store, "store_views": a.store_views, "model": a.model,
                   "feature_spec": store.meta["spec"], "extract_seconds": a.extract_s, "n_classes": n_classes,
                   "sizes": {s: int(v.sum()) for s, v in m.items()}, "rows": rows},
          ["| readout | val top-1 | test top-1 | macro F1 | log loss | probe s |", "|---|---|---|---|---|---|"]
          + [f"| {r['row']} | {r['val_accuracy']:.1%} | {r['test_accuracy']:.1%} | {r['test_macro_f1']:.3f} | "
             f"{r['test_log_loss']:.3f} | {r['seconds']:.0f} |" for r in rows])


if __name__ == "__main__":
    main()

"""Fused features: one linear probe on the concatenation of the best (block, timestep) pairs.

Single pairs see one resolution at one noise level; blocks and timesteps carry complementary
information (the papers' heatmaps are flat near the top), so concatenating the top pairs is the
cheapest way past the best single pair. Everything is chosen on val: the ranking of pairs (the
grid's val accuracy from ``diffprobe probe``) and the number of pairs fused, ``k``. Test is
reported once, for the chosen ``k`` (the other candidates' test columns are recorded, never
consulted).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..features.store import FeatureStore
from ..utils import DiffprobeError, read_json, write_json
from .linear import GridProbe
from .metrics import classification_metrics

DEFAULT_KS = (2, 3, 4, 6, 8)


def rank_pairs(results: dict) -> list[tuple[str, int]]:
    """Pairs of a probe ``results.json`` grid, best val accuracy first (ties: val macro F1)."""
    grid = sorted(results["grid"], key=lambda g: (g["val_accuracy"], g["val_macro_f1"]), reverse=True)
    return [(g["block"], int(g["timestep"])) for g in grid]


def fuse_pairs(store: FeatureStore | str | Path, results: dict | str | Path, out_dir: str | Path, *,
               ks: tuple[int, ...] = DEFAULT_KS, probe: GridProbe | None = None) -> dict:
    """Probe the concatenated features of the top-k pairs for every k in ``ks``; choose k on val.

    store: the feature store the grid was probed on; results: its ``results.json`` (or dict).
    Writes ``fusion.json`` and ``fusion.md`` to ``out_dir``; returns the same dict.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    results = results if isinstance(results, dict) else read_json(results)
    # Stores are named by their key (weights, images, settings), so the folder name identifies one.
    if Path(results.get("feature_store", store.path)).name != store.path.name:
        raise DiffprobeError(f"the results were probed on {results['feature_store']}, not on {store.path}; "
                             f"pass the results.json of this store's 'diffprobe probe'")
    ranked = [p for p in rank_pairs(results) if p in set(store.pairs)]
    ks = tuple(sorted({k for k in ks if 2 <= k <= len(ranked)}))
    if not ks:
        raise DiffprobeError(f"{store.path}: fusion needs at least 2 pairs (the store has {len(ranked)}); "
                             f"extract more blocks or timesteps")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    probe = probe or GridProbe()
    masks = {s: store.splits == s for s in ("train", "val", "test")}
    y = {s: store.labels[m] for s, m in masks.items()}
    cols = {s: [np.asarray(store.get(b, t)[m], dtype=np.float32) for b, t in ranked[: max(ks)]]
            for s, m in masks.items()}
    t0 = time.time()
    fused = {s: [np.concatenate(cols[s][:k], axis=1) for k in ks] for s in masks}
    heads = probe.fit(fused["train"], y["train"], fused["val"], y["val"], len(store.classes))
    rows = []
    for i, (k, head) in enumerate(zip(ks, heads)):
        row = {"k": k, "pairs": [{"block": b, "timestep": t} for b, t in ranked[:k]], "dim": fused["train"][i].shape[1],
               "weight_decay": head.weight_decay, "epochs": head.epochs}
        for s in ("val", "test"):
            met = classification_metrics(y[s], head.logits(fused[s][i]).argmax(1))
            row.update({f"{s}_{name}": v for name, v in met.items()})
        rows.append(row)
    best = max(rows, key=lambda r: (r["val_accuracy"], r["val_macro_f1"], -r["k"]))
    single = results["best"]
    r = {"feature_store": str(store.path), "candidates": rows, "best": best,
         "best_single_pair": {k: single[k] for k in ("block", "timestep", "val_accuracy", "test_accuracy",
                                                     "test_macro_f1")},
         "probe": {"epochs": probe.epochs, "lr": probe.lr, "weight_decays": list(probe.weight_decays),
                   "class_balanced": probe.class_balanced, "seed": probe.seed}}
    write_json(out / "fusion.json", r)
    write_json(out / "timing.json", {"fusion_fit_seconds": round(time.time() - t0, 2)})
    (out / "fusion.md").write_text(render_fusion(r))
    return r


def render_fusion(r: dict) -> str:
    b, s = r["best"], r["best_single_pair"]
    pairs = ", ".join(f"{p['block']} t={p['timestep']}" for p in b["pairs"])
    lines = ["# Fused features of the top pairs", "",
             f"**Chosen on val: k = {b['k']} pairs** ({pairs}; {b['dim']} dims): test top-1 {b['test_accuracy']:.2%}, "
             f"macro F1 {b['test_macro_f1']:.3f}, balanced accuracy {b['test_balanced_accuracy']:.2%} "
             f"(val {b['val_accuracy']:.2%}). Best single pair ({s['block']} t={s['timestep']}): test top-1 "
             f"{s['test_accuracy']:.2%}, macro F1 {s['test_macro_f1']:.3f}.", "",
             "| k | dims | val acc | test acc | test macro F1 |", "|---|---|---|---|---|"]
    for row in r["candidates"]:
        mark = " **(chosen)**" if row["k"] == b["k"] else ""
        lines.append(f"| {row['k']}{mark} | {row['dim']} | {row['val_accuracy']:.2%} | {row['test_accuracy']:.2%} | "
                     f"{row['test_macro_f1']:.3f} |")
    return "\n".join(lines + [""])

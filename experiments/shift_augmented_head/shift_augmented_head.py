"""Does a head trained on instrument-shifted copies of its training images hold up better, at no cost in-domain?

    python experiments/shift_augmented_head/shift_augmented_head.py --bundle models/ndsb --features RUNS/feats_crop/features-<key> \
        --split models/ndsb/split.csv [--shifted-train 8000] [--target IMAGES --class-map CSV]

The fused bundle's own pairs and object measurements are read from the feature store it was fitted on (clean
images). A seeded sample of --shifted-train train images, every val image and every test image are altered
each by one shift of the suite (``evaluate.shifts``: all of them, a random severity 1..3) and read through the
bundle. Two MLP heads with the bundle's settings (``head_config``) are fitted the same way, train only, the
epoch chosen on val:
- ``clean``: on the clean train features, val clean chooses its epoch (the recipe's head before its refit);
- ``augmented``: on clean + shifted train features, val clean + shifted chooses.
Val (clean and shifted) says which to prefer; test (clean, and shifted per shift) is read once for both. With
--target, a second witness: another instrument's labelled images read zero-shot through --class-map.
Shifted features are cached in --out, so a re-run only fits the heads.

Writes experiments/shift_augmented_head/results/<--name>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from diffprobe.workflows.bench import shipped_head_probe, writer
from scipy.special import softmax

from diffprobe.data.io import read_image
from diffprobe.data.manifest import Manifest, open_dataset
from diffprobe.evaluate.crossdata import read_class_map
from diffprobe.evaluate.shifts import SHIFTS, apply_shift
from diffprobe.features.store import FeatureStore
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.metrics import classification_metrics
from diffprobe.utils import read_json, write_json

write = writer(__file__)  # results/<name>.json and .md beside this script

PARTS = ("train", "val", "test")


def shifted_features(bundle, manifest: Manifest, rows: np.ndarray, part: str, cache: Path, severities: range):
    """Features (through ``bundle``) of the images ``rows`` of ``manifest``, each altered by one seeded random
    shift and severity; cached in ``cache`` (.npy + .json naming each image's shift)."""
    if cache.with_suffix(".npy").is_file():
        return np.load(cache.with_suffix(".npy")), read_json(cache.with_suffix(".json"))
    rng = np.random.default_rng(PARTS.index(part) + 1)
    names = list(SHIFTS)
    raw, info = [], []
    for i in rows:
        shift, severity = names[rng.integers(len(names))], int(rng.integers(severities.start, severities.stop))
        raw.append(apply_shift(read_image(manifest.full_path(i)), shift, severity, key=manifest.paths[i]))
        info.append([shift, severity])
    t0 = time.time()
    feats = bundle.features(*bundle.prepare(raw))
    print(f"{part}: {len(rows)} shifted images read in {time.time() - t0:.0f} s", flush=True)
    np.save(cache.with_suffix(".npy"), feats)
    write_json(cache.with_suffix(".json"), info)
    return feats, info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="models/ndsb", help="a fused bundle (MLP head on pairs + measurements)")
    ap.add_argument("--features", required=True, help="the feature store the bundle's head was fitted on")
    ap.add_argument("--split", default="models/ndsb/split.csv", help="the store's split (its images)")
    ap.add_argument("--shifted-train", type=int, default=8000, help="train images added once shifted")
    ap.add_argument("--max-severity", type=int, default=3, help="shifts drawn at severity 1 .. this")
    ap.add_argument("--target", help="another instrument's labelled images (folder), read zero-shot")
    ap.add_argument("--class-map", help="CSV mapping --target's classes to the bundle's (evaluate --class-map)")
    ap.add_argument("--out", default="runs/shift-augmented-head", help="cache of the shifted features")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="shift_augmented_head")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = ClassifierBundle.load(a.bundle)
    store = FeatureStore(a.features)
    manifest = Manifest.load(a.split)
    row_of = {p: i for i, p in enumerate(manifest.paths)}
    x, y, rows = {}, {}, {}
    for part in PARTS:
        m = store.splits == part
        x[part] = np.concatenate([np.asarray(store.get(b, t)[m], np.float32) for b, t in bundle.pairs]
                                 + [store.metadata[m]], axis=1)
        y[part] = store.labels[m]
        rows[part] = np.array([row_of[p] for p in np.asarray(read_json(store.path / "paths.json"))[m]])
    # The store holds what the bundle computes (same pairs, views and measurements), or the comparison is void.
    check = bundle.features(*bundle.prepare([read_image(manifest.full_path(i)) for i in rows["val"][:16]]))
    gap = float(np.abs(check - x["val"][:16]).max())
    if gap > 0.05:
        raise SystemExit(f"{a.features} does not hold {a.bundle}'s features (max difference {gap:.3f})")

    severities = range(1, a.max_severity + 1)
    pick = np.sort(np.random.default_rng(a.seed).choice(len(y["train"]), min(a.shifted_train, len(y["train"])),
                                                        replace=False))
    xs = {"train": shifted_features(bundle, manifest, rows["train"][pick], "train",
                                    out / f"train_{a.shifted_train}_s{a.max_severity}", severities)[0]}
    test_info = None
    for part in ("val", "test"):
        xs[part], info = shifted_features(bundle, manifest, rows[part], part, out / f"{part}_s{a.max_severity}",
                                          severities)
        test_info = info if part == "test" else test_info

    target = None
    if a.target:
        if not a.class_map:
            raise SystemExit("--target needs --class-map")
        tb = replace(bundle, meta={**bundle.meta, "preprocess": {**bundle.meta["preprocess"], "polarity": "auto"}})
        tm = open_dataset(a.target)
        data_classes = sorted(set(tm.labels))
        cmap = read_class_map(a.class_map, bundle.classes, data_classes)
        tm = tm.subset([lab in cmap.data_groups for lab in tm.labels])
        arr = tb.read_split(tm, classes=data_classes, progress=False)
        target = (tb.features(arr.images, arr.meta), np.array([cmap.data_groups[data_classes[k]] for k in arr.labels]),
                  cmap)

    n_classes = len(bundle.classes)
    tail = (store.metadata.shape[1], float(bundle.meta["head_config"]["tail"][1]))
    fits = {"clean": (x["train"], y["train"], x["val"], y["val"]),
            "augmented": (np.concatenate([x["train"], xs["train"]]), np.concatenate([y["train"], y["train"][pick]]),
                          np.concatenate([x["val"], xs["val"]]), np.concatenate([y["val"], y["val"]]))}
    results = {}
    for name, (xtr, ytr, xva, yva) in fits.items():
        t0 = time.time()
        head = shipped_head_probe(seed=a.seed).fit(xtr, ytr, xva, yva, n_classes, tail=tail)
        r = {"fit_s": round(time.time() - t0, 1), "train_images": len(ytr)}
        for part, (xx, yy) in {"val_clean": (x["val"], y["val"]), "val_shifted": (xs["val"], y["val"]),
                               "test_clean": (x["test"], y["test"]), "test_shifted": (xs["test"], y["test"])}.items():
            met = classification_metrics(yy, head.logits(xx).argmax(1))
            r[part] = {k: met[k] for k in ("accuracy", "macro_f1")}
        hit = head.logits(xs["test"]).argmax(1) == y["test"]
        r["test_by_shift"] = {s: float(np.mean([h for h, (ss, _) in zip(hit, test_info) if ss == s])) for s in SHIFTS}
        if target is not None:
            feats, groups, cmap = target
            # the most probable mapped group (renormalising over the groups would not change the argmax)
            met = classification_metrics(groups, cmap.group_probs(softmax(head.logits(feats), 1)).argmax(1))
            r["target_zero_shot"] = {k: met[k] for k in ("accuracy", "macro_f1")}
        results[name] = r
        print(name, r, flush=True)

    chosen = max(results, key=lambda k: results[k]["val_clean"]["accuracy"] + results[k]["val_shifted"]["accuracy"])
    title = (f"# A head trained on shifted copies of its images ({a.bundle}, {a.shifted_train} shifted train images, "
             f"severity 1-{a.max_severity})")
    intro = ("Top-1 (macro F1). Shifted: each image altered by one random shift of the suite; val (clean + shifted) "
             f"prefers **{chosen}**; test read once for both.")
    table = [title, "", intro, "",
             "| head | val clean | val shifted | test clean | test shifted | " + " | ".join(SHIFTS)
             + (" | other instrument, zero-shot |" if target is not None else " |"),
             "|---|---|---|---|---|" + "---|" * len(SHIFTS) + ("---|" if target is not None else "")]
    for name, r in results.items():
        cells = [f"{r[p]['accuracy']:.1%} ({r[p]['macro_f1']:.3f})" for p in
                 ("val_clean", "val_shifted", "test_clean", "test_shifted")]
        cells += [f"{r['test_by_shift'][s]:.1%}" for s in SHIFTS]
        if target is not None:
            cells.append(f"{r['target_zero_shot']['accuracy']:.1%} ({r['target_zero_shot']['macro_f1']:.3f})")
        table.append(f"| {name} | " + " | ".join(cells) + " |")
    write(a.name, {"bundle": a.bundle, "split": a.split, "shifted_train": a.shifted_train,
                   "severities": list(severities), "seed": a.seed, "store_bundle_gap": gap, "chosen_on_val": chosen,
                   "results": results}, table)


if __name__ == "__main__":
    main()

"""Zero-shot on another instrument: what the object's size measurements do when the pixel scale differs.

A bundle that reads the object metadata (``data.measurements``: log sizes in the instrument's pixels) meets
another instrument's images at another pixel scale, so every size is off by one unknown factor. Rows:

- ``as measured``: sizes in the target's pixels (what ``evaluate`` does today);
- ``scale from unlabelled images``: sizes rescaled (``data.measurements.rescale_sizes``) by one factor that
  brings the target images' median lengths to the training images' (``estimate_scale``; estimated from
  unlabelled images only: no target label is read); what ``evaluate`` / ``predict --size-scale auto`` do;
- ``sizes withheld``: every metadata column set to its training mean (the head sees no size at all),

each with the frame kept and with the crop to the organism (``Preprocess.crop``). Macro F1 and accuracy
through the class map, on every labelled target image.

    python experiments/zeroshot_size_scale/zeroshot_size_scale.py TARGET --class-map MAP --bundle BUNDLE --store TRAIN_STORE \
        [--name zeroshot_size_scale]

``--store`` is the feature store the bundle's head was fitted on (its metadata give the training medians).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from scipy.special import softmax

from diffprobe.workflows.bench import writer
from diffprobe.data.dataset import load_images
from diffprobe.data.manifest import open_dataset
from diffprobe.data.measurements import METADATA_NAMES, estimate_scale, rescale_sizes
from diffprobe.evaluate.crossdata import read_class_map
from diffprobe.features import FeatureStore
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.metrics import classification_metrics

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", help="labelled target images (folder, manifest or EcoTaxa TSV)")
    ap.add_argument("--class-map", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--store", required=True, help="the feature store the bundle's head was fitted on")
    ap.add_argument("--name", default="zeroshot_size_scale")
    a = ap.parse_args()
    bundle = ClassifierBundle.load(a.bundle)
    if not bundle.uses_metadata:
        raise SystemExit(f"{a.bundle} reads no object metadata: nothing to measure")
    train_meta = FeatureStore(a.store)
    train_meta = train_meta.metadata[train_meta.splits == "train"]
    m = open_dataset(a.target, labelled=True)
    cmap = read_class_map(a.class_map, bundle.classes, m.classes)
    m = m.subset([lab in cmap.data_groups for lab in m.labels])
    n_pairs_dims = len(bundle.head.mean) - len(METADATA_NAMES)
    rows = []
    for crop in (False, True):
        pre = replace(bundle.preprocess, polarity="auto", crop=crop)
        arr = load_images(m, pre, classes=m.classes, progress=False)
        y = np.array([cmap.data_groups[m.classes[k]] for k in arr.labels])
        b = replace(bundle, meta={**bundle.meta, "preprocess": pre.to_dict()})
        x = b.features(arr.images, arr.meta, progress=True)
        scale = estimate_scale(arr.meta, np.median(train_meta, 0))
        variants = {"as measured": arr.meta, "scale from unlabelled images": rescale_sizes(arr.meta, scale)}
        variants["sizes withheld"] = np.broadcast_to(train_meta.mean(0), arr.meta.shape)
        for name, meta in variants.items():
            z = bundle.head.logits(np.concatenate([x[:, :n_pairs_dims], meta], 1).astype(np.float32))
            p = cmap.group_probs(softmax(z / bundle.temperature, axis=1))
            met = classification_metrics(y, p.argmax(1))
            rows.append({"crop": crop, "metadata": name, "macro_f1": met["macro_f1"], "accuracy": met["accuracy"],
                         "estimated_scale": scale if name.startswith("scale") else None, "n_images": len(y)})
            print(rows[-1], flush=True)
    md = ["# Zero-shot on another instrument: object sizes at an unknown pixel scale", "",
          "| images | size measurements | macro F1 | accuracy |", "|---|---|---|---|"]
    for r in rows:
        sizes = r["metadata"] + ("" if r["estimated_scale"] is None else f" (x{r['estimated_scale']:.2f})")
        md.append(f"| {'cropped to organism' if r['crop'] else 'frame kept'} | {sizes} | {r['macro_f1']:.3f} | "
                  f"{r['accuracy']:.1%} |")
    write(a.name, {"bundle": a.bundle, "class_map": a.class_map, "rows": rows}, md)


if __name__ == "__main__":
    main()

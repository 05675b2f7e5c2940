"""A bundle's head inputs and calibrated probabilities on one part of a split, as the ``.npz`` that
``benchmarks/annotation.py`` reads (features (N, D), labels (N,), probs (N, C), classes (C,)).

    python benchmarks/bundle_features.py --bundle MODEL --split MODEL/split.csv --part test --out FILE.npz
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import softmax

from diffprobe.data.dataset import load_split_images
from diffprobe.probe.bundle import ClassifierBundle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--split", required=True, help="a split CSV (path, label, split) of the bundle's classes")
    ap.add_argument("--part", default="test", choices=("train", "val", "test"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bundle = ClassifierBundle.load(a.bundle)
    arr = load_split_images(a.split, bundle.preprocess, classes=bundle.classes)
    keep = arr.splits == a.part
    t0 = time.time()
    x = bundle.features(arr.images[keep], arr.meta[keep] if bundle.uses_metadata else None, progress=True)
    probs = softmax(bundle.head.logits(x) / bundle.temperature, axis=1)
    np.savez_compressed(a.out, features=x.astype(np.float32), labels=arr.labels[keep], probs=probs.astype(np.float32),
                        classes=np.array(bundle.classes))
    print(f"{keep.sum()} images -> {a.out} in {time.time() - t0:.0f} s; accuracy "
          f"{(probs.argmax(1) == arr.labels[keep]).mean():.2%}")


if __name__ == "__main__":
    main()

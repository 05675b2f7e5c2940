"""The ``.npz`` that ``benchmarks/annotation.py`` reads (features (N, D), labels (N,), probs (N, C), classes (C,),
info): a bundle's head inputs and calibrated probabilities, made one of two ways.

- From a split: one part of a split CSV of the bundle's own classes.
- From an app project (``diffprobe app init``) of another instrument's labelled images and a class map: the
  features the app computed (``features.npy``), the bundle's probabilities from them (as the app's
  ``model_predictions``), summed per group and renormalised as ``diffprobe evaluate --class-map`` does
  (``evaluate.crossdata.condition_on_groups``), labels from the images' folders mapped to their groups; images whose class maps to
  no group are left out and counted.

    python benchmarks/bundle_features.py --bundle MODEL --split MODEL/split.csv --part test --out FILE.npz
    diffprobe app init runs/spc-app --images $DIFFPROBE_DATA/spc/images --model models/ndsb
    python benchmarks/bundle_features.py --project runs/spc-app --class-map $DIFFPROBE_DATA/spc/class_map.csv \
        --out runs/spc.npz
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.special import softmax

from diffprobe.data.dataset import load_split_images
from diffprobe.data.manifest import Manifest, open_dataset
from diffprobe.evaluate.crossdata import condition_on_groups, read_class_map
from diffprobe.probe.bundle import ClassifierBundle


def shown(path: str | Path) -> str:
    """A path as a result file may record it: ``$DIFFPROBE_DATA/...`` inside the data folder."""
    from diffprobe.utils import portable_data_path  # noqa: PLC0415

    return portable_data_path(path) or str(path)


def from_split(a) -> None:
    bundle = ClassifierBundle.load(a.bundle)
    split = Manifest.load(a.split)
    split = split.subset(split.split_mask(a.part))  # decode only the part asked for
    arr = load_split_images(split, bundle.preprocess, classes=bundle.classes)
    keep = arr.splits == a.part
    t0 = time.time()
    x = bundle.features(arr.images[keep], arr.meta[keep] if bundle.uses_metadata else None, progress=True)
    probs = softmax(bundle.head.logits(x) / bundle.temperature, axis=1)
    info = {"made_by": "benchmarks/bundle_features.py --split", "bundle": str(a.bundle), "split": str(a.split),
            "part": a.part, "n_images": int(keep.sum())}
    np.savez_compressed(a.out, features=x.astype(np.float32), labels=arr.labels[keep], probs=probs.astype(np.float32),
                        classes=np.array(bundle.classes), info=json.dumps(info))
    print(f"{keep.sum()} images -> {a.out} in {time.time() - t0:.0f} s; accuracy "
          f"{(probs.argmax(1) == arr.labels[keep]).mean():.2%}")


def from_project(a) -> None:
    from diffprobe.app.project import Project  # noqa: PLC0415

    project = Project.open(a.project)
    try:
        rows = project.store.all_objects()
        features = np.array(project.features(), np.float32)  # a writable copy
    finally:
        project.close()
    meta, head = ClassifierBundle.load_head(Path(project.info["model"]))
    labelled = open_dataset(project.images_root, labelled=True)  # the folders are the taxa
    taxon_of = dict(zip(labelled.paths, labelled.labels, strict=True))
    taxa = [taxon_of[r["path"]] for r in rows]
    cmap = read_class_map(a.class_map, meta["classes"], labelled.classes)
    # The bundle's probabilities as the app makes them from the stored features, summed per group (crossdata's).
    probs = softmax(head.logits(features) / float(meta["temperature"]), axis=1)
    groups = condition_on_groups(cmap.group_probs(probs))
    keep = np.asarray([t in cmap.data_groups for t in taxa])
    labels = np.asarray([cmap.data_groups[t] for t, k in zip(taxa, keep, strict=True) if k], np.int64)
    left_out = Counter(t for t, k in zip(taxa, keep, strict=True) if not k)
    model = Path(project.info["model"])
    try:
        model = model.relative_to(Path.cwd())
    except ValueError:
        pass
    info = {"made_by": "benchmarks/bundle_features.py --project (features of 'diffprobe app init')",
            "images": shown(project.info["images"]), "bundle": str(model), "class_map": shown(Path(a.class_map)),
            "n_objects": len(rows), "n_unreadable": int(project.info.get("n_skipped", 0)),
            "n_images": int(keep.sum()), "n_left_out": int((~keep).sum()), "left_out_by_class": dict(left_out),
            "n_taxa": len(set(taxa)), "n_taxa_mapped": len({t for t in taxa if t in cmap.data_groups})}
    np.savez_compressed(a.out, features=features[keep], labels=labels, probs=groups[keep].astype(np.float32),
                        classes=np.array(cmap.groups), ids=np.asarray([r["id"] for r in rows])[keep],
                        info=json.dumps(info))
    print(f"{keep.sum()} images ({(~keep).sum()} of classes in no group left out) -> {a.out}; group accuracy "
          f"{(groups[keep].argmax(1) == labels).mean():.2%}; {json.dumps(info)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", help="with --split: the bundle")
    ap.add_argument("--split", help="a split CSV (path, label, split) of the bundle's classes")
    ap.add_argument("--part", default="test", choices=("train", "val", "test"))
    ap.add_argument("--project", help="an app project made by 'diffprobe app init' of labelled images (class folders)")
    ap.add_argument("--class-map", help="with --project: a class map (group,model_pattern,data_pattern)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.project:
        if not a.class_map:
            ap.error("--project needs --class-map")
        from_project(a)
    elif a.bundle and a.split:
        from_split(a)
    else:
        ap.error("pass --bundle and --split, or --project and --class-map")


if __name__ == "__main__":
    main()

"""The supervised CNN's own classifier head on the val part of its split, reading each image once and averaged
over the 8 flips / quarter turns: does test-time augmentation earn its 8 forwards? Val only (the test part is
read once, by the shipped bundle's export).

    python experiments/supervised_cnn/own_head.py --run runs/ndsb-cnn/cnn --split models/ndsb/split.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from diffprobe.backbones.baselines import BaselineBackbone
from diffprobe.data.dataset import load_split_images
from diffprobe.data.preprocess import Preprocess, dihedral
from diffprobe.utils import cpu_name, read_json, write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="the supervised baseline's run folder")
    p.add_argument("--split", required=True, help="its split manifest")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "own_head.json"))
    args = p.parse_args()
    backbone = BaselineBackbone.load(Path(args.run))
    arr = load_split_images(args.split, Preprocess.from_dict(read_json(Path(args.run) / "preprocess.json")))
    x, y = arr.part("val")
    rows = {}
    for views in (1, 8):
        start = time.perf_counter()
        logits = np.mean([backbone.classify(dihedral(x, v), precision="fp32") for v in range(views)], axis=0)
        seconds = time.perf_counter() - start
        prob = softmax(logits, axis=1)
        rows[f"views_{views}"] = {
            "val_accuracy": float((prob.argmax(1) == y).mean()),
            "val_macro_f1": float(f1_score(y, prob.argmax(1), average="macro")),
            "val_log_loss": float(log_loss(y, prob, labels=np.arange(len(arr.classes)))),
            "images_per_s_fp32": round(len(x) / seconds, 1)}
        print(views, rows[f"views_{views}"])
    write_json(args.out, {"run": args.run, "n_val": int(len(x)), "machine": cpu_name(), "precision": "fp32",
                          "threads_note": "timed on a CPU shared with other jobs: rates are lower bounds",
                          "rows": rows})


if __name__ == "__main__":
    main()

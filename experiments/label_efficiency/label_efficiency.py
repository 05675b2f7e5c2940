"""Where each route wins: the strong CNN (the plain 5-block CNN and the supervised route's recipe) trained end to end
on k labelled images per class, beside the diffusion features' linear probe on the same k (the comparison's label
curve, experiments/compare_curves).

A CNN that saw every label and is then probed with k says nothing about k labels, so each k trains its own CNN, on
k train images of every class (all of a class that has fewer; one seeded draw per k), for 30 epochs of those images
or ``--min-steps`` steps, whichever is more (a 121-image set needs more than 30 passes; batches of 128, or of
the largest power of two the set holds), with an EMA as long as the
run allows. Each CNN is scored by its own head on val and on test (test, as the label curve it is compared with;
every read appended to the ledger, marked not shipped).

    python experiments/label_efficiency/label_efficiency.py --split runs/ndsb-convnet/split.csv \
        --out runs/label_efficiency --ledger results/test_reads.csv
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from diffprobe.backbones.baselines import BaselineBackbone, ConvNetConfig
from diffprobe.data.dataset import load_split_images
from diffprobe.pretrain.baselines import BaselineConfig, train_baseline
from diffprobe.probe.label_curve import per_class_subset
from diffprobe.utils import cpu_name, read_json, write_json
from diffprobe.workflows.export_model import record_test_read

HERE = Path(__file__).parent


def scores(backbone: BaselineBackbone, x: np.ndarray, y: np.ndarray, n_classes: int) -> dict:
    prob = softmax(backbone.classify(x, precision="fp32"), axis=1)
    return {"accuracy": float((prob.argmax(1) == y).mean()),
            "macro_f1": float(f1_score(y, prob.argmax(1), average="macro")),
            "log_loss": float(log_loss(y, prob, labels=np.arange(n_classes)))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", required=True, help="the split manifest (the shipped model's: seed 0)")
    p.add_argument("--out", required=True, help="folder for the trained CNNs (one per k)")
    p.add_argument("--shots", default="1,5,10,50", help="labelled images per class (default 1,5,10,50)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--min-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ledger", help="CSV to which each test read is appended")
    p.add_argument("--result", default=str(HERE / "results" / "label_efficiency.json"))
    args = p.parse_args()

    base = BaselineConfig(method="supervised", arch=ConvNetConfig(), budget_images=1, lr=2e-3, label_smoothing=0.1,
                          scale_jitter=0.1, checkpoint_every=100, seed=args.seed, precision="fp32")
    arr = load_split_images(args.split, base.preprocess)
    train = np.flatnonzero(arr.splits == "train")
    n_classes = len(arr.classes)
    parts = {s: arr.part(s) for s in ("val", "test")}
    rows = []
    for k in (int(s) for s in args.shots.split(",")):
        picked = per_class_subset(arr.labels, train, k, np.random.default_rng([args.seed, k]))
        batch = min(base.batch_size, 2 ** int(math.log2(len(picked))))  # 121 images (k = 1): batches of 64
        steps = max(args.min_steps, math.ceil(args.epochs * len(picked) / batch))
        cfg = BaselineConfig(**{**base.to_dict(), "budget_images": steps * batch, "batch_size": batch,
                                "ema_decay": min(0.999, 1 - 10 / steps) if steps > 100 else None})
        run = Path(args.out) / f"k{k}"
        train_baseline(arr.images[picked], run, cfg, labels=arr.labels[picked], n_classes=n_classes, resume=True)
        backbone = BaselineBackbone.load(run)
        row = {"shots": k, "n_train": int(len(picked)), "steps": steps, "batch_size": batch, "ema_decay": cfg.ema_decay,
               "train_seconds": round(read_json(run / "summary.json")["elapsed_s"], 1),
               **{f"{s}_{m}": v for s in parts for m, v in scores(backbone, *parts[s], n_classes).items()}}
        rows.append(row)
        print(row, flush=True)
        if args.ledger:
            record_test_read(args.ledger, f"{run} (experiments/label_efficiency, k = {k}: not shipped)", None,
                             {"part": "test", "n_images": len(parts["test"][1]), "precision": "fp32",
                              **{m: row[f"test_{m}"] for m in ("accuracy", "macro_f1", "log_loss")}})
    write_json(args.result, {"split": Path(args.split).name, "seed": args.seed, "arch": "convnet",
                             "recipe": {k: v for k, v in base.to_dict().items() if k in (
                                 "lr", "weight_decay", "label_smoothing", "scale_jitter", "batch_size")},
                             "epochs": args.epochs, "min_steps": args.min_steps, "machine": cpu_name(),
                             "precision": "fp32", "rows": rows})


if __name__ == "__main__":
    main()

"""Fine-tuning row of the accuracy ablation (not the paper's protocol): the pretrained U-Net and a head trained
end to end with labels (``pretrain.finetune``), read like the frozen recipe (6 blocks at t=1, avg+max pooled,
object metadata, an MLP head, 8 test-time views), at the frozen recipe's compute after pretraining.

Trains on the split's train part only; val gives the temperature and is reported; test is read once.

    python experiments/finetune_unet/finetune_unet.py --model PRETRAIN_RUN --split RUN/split.csv --out runs/finetune \
        [--steps 2000] [--resume]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.special import softmax

from diffprobe.workflows.bench import writer
from diffprobe.data.dataset import load_split_images, model_preprocess
from diffprobe.pretrain.finetune import FinetuneConfig, finetune, finetuned_logits, load_finetuned
from diffprobe.probe.calibration import fit_temperature
from diffprobe.probe.metrics import classification_metrics, multiclass_log_loss
from diffprobe.utils import read_json

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="pretraining run (or a bundle's backbone folder)")
    ap.add_argument("--split", required=True, help="split manifest CSV (train / val / test)")
    ap.add_argument("--out", required=True, help="the fine-tuning run folder (checkpointed; --resume continues it)")
    ap.add_argument("--steps", type=int, default=FinetuneConfig.steps)
    ap.add_argument("--lr", type=float, default=FinetuneConfig.lr)
    ap.add_argument("--views", type=int, default=8, help="test-time views averaged at evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--name", default="finetune_unet")
    a = ap.parse_args()

    arr = load_split_images(a.split, model_preprocess(a.model))
    m = {s: arr.splits == s for s in ("train", "val", "test")}
    n_classes = len(arr.classes)
    cfg = FinetuneConfig(model_dir=a.model, steps=a.steps, lr=a.lr, seed=a.seed)
    finetune(cfg, arr.images[m["train"]], arr.meta[m["train"]], arr.labels[m["train"]], n_classes, a.out,
             resume=a.resume)
    summary = read_json(f"{a.out}/summary.json")
    model = load_finetuned(a.out)
    t0 = time.time()
    logits = {s: finetuned_logits(model, arr.images[m[s]], arr.meta[m[s]], views=a.views, seed=a.seed)
              for s in ("val", "test")}
    eval_s = time.time() - t0
    y = {s: arr.labels[m[s]] for s in ("val", "test")}
    temperature = fit_temperature(logits["val"], y["val"])
    r = {"model": a.model, "config": cfg.to_dict(), "views": a.views, "temperature": temperature,
         "finetune_s": summary["elapsed_s"], "images_seen": summary["images_seen"],
         "images_per_s": summary["images_per_s"], "precision": summary["precision"],
         "eval_s_val_and_test": round(eval_s, 1)}
    for s in ("val", "test"):
        r.update({f"{s}_{k}": v for k, v in classification_metrics(y[s], logits[s].argmax(1)).items()})
        r[f"{s}_log_loss"] = multiclass_log_loss(y[s], softmax(logits[s] / temperature, axis=1))
    md = ["# Fine-tuning the pretrained U-Net with labels (an extra row, not the paper's protocol)", "",
          f"{a.steps} steps x {cfg.batch_size} images ({summary['images_seen']} images seen) in "
          f"{summary['elapsed_s'] / 60:.1f} min ({summary['images_per_s']} img/s, {summary['precision']}); "
          f"evaluation of val + test with {a.views} views {eval_s / 60:.1f} min.", "",
          "| readout | val top-1 | test top-1 | test macro F1 | test log loss |", "|---|---|---|---|---|",
          f"| fine-tuned U-Net + MLP head, 6 blocks t={cfg.timestep} avg+max + metadata, {a.views} views | "
          f"{r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.3f} | "
          f"{r['test_log_loss']:.3f} |"]
    write(a.name, r, md)


if __name__ == "__main__":
    torch.manual_seed(0)
    np.random.seed(0)
    main()

"""Fine-tuning throughput (images/s) of the shipped U-Net + head in fp32 and in bf16, each a fresh 30-step run on
4,000 train images in its own process (Accelerate fixes the precision once per process), on the machine it runs
on. The fine-tuning row of the ablation trained in what ``auto`` picks here; this says what the other costs.

    python benchmarks/finetune_speed.py --model PRETRAIN_RUN --split RUN/split.csv [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

from _common import write

ONE_RUN = """
import json, sys
from diffprobe.data.dataset import load_split_images, model_preprocess
from diffprobe.pretrain.finetune import FinetuneConfig, finetune
model, split, steps, precision, out = sys.argv[1:6]
arr = load_split_images(split, model_preprocess(model), progress=False)
m = arr.splits == "train"
cfg = FinetuneConfig(model_dir=model, steps=int(steps), checkpoint_every=0, precision=precision)
finetune(cfg, arr.images[m][:4000], arr.meta[m][:4000], arr.labels[m][:4000], len(arr.classes), out, progress=False)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    rates = {}
    for precision in ("fp32", "bf16"):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-c", ONE_RUN, a.model, a.split, str(a.steps), precision, out], check=True)
            rates[precision] = json.load(open(f"{out}/summary.json"))["images_per_s"]
    md = ["| precision | fine-tuning images/s (batch 64) |", "|---|---|"]
    md += [f"| {p} | {r} |" for p, r in rates.items()]
    write("finetune_speed", {"steps": a.steps, "images_per_s": rates}, md)


if __name__ == "__main__":
    main()

"""The core-pipeline accuracy target on real NDSB data (121 classes, natural long tail): pretrain a DDPM
U-Net on the train part within a CPU budget, extract the full (block, timestep) grid, probe every pair,
k-means on the best pair. Targets: best single pair >= 70% top-1 (stretch 75%), macro F1 >= 0.50.

    python experiments/ndsb_linear_probe/ndsb_linear_probe.py --data $DIFFPROBE_DATA/ndsb/images --out runs/ndsb --steps 8000

Resumable: re-running continues the pretraining and reuses cached features. Writes
experiments/ndsb_linear_probe/results/ndsb_linear_probe.json (and the run's own results.json/report.md/heatmap.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffprobe.workflows.bench import writer
from diffprobe.workflows import pipeline
from diffprobe.backbones import UNetConfig
from diffprobe.features import FeatureSpec
from diffprobe.pretrain import PretrainConfig
from diffprobe.probe import GridProbe
from diffprobe.workflows.probe import run_probe
from diffprobe.utils import read_json

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="NDSB image folder, e.g. $DIFFPROBE_DATA/ndsb/images")
    ap.add_argument("--out", default="runs/ndsb")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--channels", default="64,128,128")
    ap.add_argument("--timesteps", default="1,10,25,50,100,200,400")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    manifest = out / "split.csv"
    if not manifest.is_file():
        pipeline.split(a.data, manifest, seed=a.seed)
    cfg = PretrainConfig(unet=UNetConfig(image_size=a.image_size, channels=tuple(map(int, a.channels.split(",")))),
                         steps=a.steps, batch_size=64, lr=2e-4, checkpoint_every=250, seed=a.seed)
    run = out / "ddpm"
    if not (run / "summary.json").is_file() or read_json(run / "summary.json")["step"] < a.steps:
        pipeline.run_pretrain(manifest, run, cfg, resume=True)
    store = pipeline.run_features(run, manifest, out / "features",
                                  FeatureSpec(timesteps=tuple(map(int, a.timesteps.split(","))), seed=a.seed))
    r = run_probe(store, out / "probe", probe=GridProbe(seed=a.seed), title="NDSB natural: linear-probe accuracy")
    c = pipeline.run_cluster(store, out / "probe", results=r, seed=a.seed)
    b = r["best"]
    summary = read_json(run / "summary.json")
    res = {"best": b, "chance_accuracy": r["chance_accuracy"], "n_classes": r["n_classes"],
           "split_sizes": r["split_sizes"], "kmeans": c, "pretrain": summary, "config": cfg.to_dict(),
           "targets": {"top1": 0.70, "top1_stretch": 0.75, "macro_f1": 0.50},
           "met": {"top1": b["test_accuracy"] >= 0.70, "macro_f1": b["test_macro_f1"] >= 0.50}}
    table = ["| best pair (val) | test top-1 | macro F1 | bal. acc | k-means NMI | pretraining |", "|---|---|---|---|---|---|",
             f"| {b['block']} t={b['timestep']} | {b['test_accuracy']:.2%} | {b['test_macro_f1']:.3f} | "
             f"{b['test_balanced_accuracy']:.2%} | {c['nmi']:.3f} | {summary['step']} steps, "
             f"{summary['elapsed_s'] / 60:.0f} min, {summary['params'] / 1e6:.1f}M params |"]
    write("ndsb_linear_probe", res, table)


if __name__ == "__main__":
    main()

"""Accuracy per CPU-hour on NDSB: image size x U-Net width x pretraining minutes against the best pair's
test top-1 (chosen on val), to choose the defaults from.

    python experiments/accuracy_per_cpu_hour/accuracy_per_cpu_hour.py --configs 32:32,64,64:10 32:64,128,128:10 48:32,64,64:10

Each config SIZE:CHANNELS:MINUTES pretrains a DDPM U-Net on the train part of the shipped model's split
(models/ndsb/split.csv) for MINUTES of wall-clock time, extracts every block at --timesteps, probes every
pair and records the val-chosen pair's test scores. CPU-hours count pretraining and extraction on all the
machine's cores (wall time x cores). Resumable: finished configs are reused (``--reprobe`` probes their
cached features again, e.g. after a change of the probe, keeping the measured CPU-hours). Writes
experiments/accuracy_per_cpu_hour/results/accuracy_per_cpu_hour.json and .md, with the shipped model (116 min) as a reference row.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from diffprobe.workflows.bench import writer
from diffprobe.workflows import pipeline
from diffprobe.backbones import UNetConfig
from diffprobe.features import FeatureSpec
from diffprobe.pretrain import PretrainConfig
from diffprobe.probe import GridProbe
from diffprobe.workflows.probe import run_probe
from diffprobe.utils import read_json, write_json

write = writer(__file__)  # results/<name>.json and .md beside this script

ROOT = Path(__file__).resolve().parents[2]  # the repository root


def run_config(text: str, split: str, work: Path, timesteps: tuple[int, ...], seed: int, reprobe: bool) -> dict:
    size, channels, minutes = text.split(":")
    size, minutes, channels = int(size), float(minutes), tuple(int(c) for c in channels.split(","))
    out = work / f"s{size}-c{'_'.join(map(str, channels))}-m{minutes:g}"
    done = out / "row.json"
    old = read_json(done) if done.is_file() else None
    if old and not reprobe:
        return old
    cfg = PretrainConfig(unet=UNetConfig(image_size=size, channels=channels), minutes=minutes, batch_size=64,
                         checkpoint_every=250, seed=seed)
    if not (out / "ddpm" / "summary.json").is_file():
        pipeline.run_pretrain(split, out / "ddpm", cfg, resume=True)
    summary = read_json(out / "ddpm" / "summary.json")
    t0 = time.time()
    store = pipeline.run_features(out / "ddpm", split, out / "features", FeatureSpec(timesteps=timesteps, seed=seed))
    extract_s = old["extract_minutes"] * 60 if old else time.time() - t0  # a reprobe reads cached features
    r = run_probe(store, out / "probe", probe=GridProbe(seed=seed), bundle=False)
    b = r["best"]
    cores = os.cpu_count() or 1
    row = {"image_size": size, "channels": list(channels), "params": summary["params"],
           "pretrain_minutes": round(summary["elapsed_s"] / 60, 1), "images_seen": summary["images_seen"],
           "extract_minutes": round(extract_s / 60, 1),
           "cpu_hours": old["cpu_hours"] if old else round((summary["elapsed_s"] + extract_s) * cores / 3600, 3),
           "best_pair": f"{b['block']} t={b['timestep']}", "val_accuracy": b["val_accuracy"],
           "test_accuracy": b["test_accuracy"], "test_macro_f1": b["test_macro_f1"]}
    write_json(done, row)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", nargs="+", default=["32:32,64,64:10", "32:64,128,128:10", "48:32,64,64:10"])
    ap.add_argument("--split", default=str(ROOT / "models/ndsb/split.csv"))
    ap.add_argument("--timesteps", default="1,10,25")
    ap.add_argument("--work", default="runs/accuracy_per_cpu_hour")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reprobe", action="store_true", help="probe finished configs' cached features again")
    a = ap.parse_args()
    timesteps = tuple(int(t) for t in a.timesteps.split(","))
    rows = [run_config(c, a.split, Path(a.work), timesteps, a.seed, a.reprobe) for c in a.configs]
    shipped = read_json(ROOT / "models/ndsb/backbone/summary.json")
    ref = read_json(ROOT / "models/ndsb/bundle.json")
    reference = {"image_size": 32, "channels": [64, 128, 128], "params": shipped["params"],
                 "pretrain_minutes": round(shipped["elapsed_s"] / 60, 1), "images_seen": shipped["images_seen"],
                 "best_pair": f"{ref['block']} t={ref['timestep']}", "test_accuracy": ref["metrics"]["test_accuracy"],
                 "test_macro_f1": ref["metrics"]["test_macro_f1"],
                 "note": f"the shipped model, timesteps {ref['feature_spec']['timesteps']}"}
    table = ["| image size | U-Net widths | params | pretraining | images seen | CPU-hours | best pair (val) | "
             "test top-1 | macro F1 | top-1 points per CPU-hour |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['image_size']} | {','.join(map(str, r['channels']))} | {r['params'] / 1e6:.2f}M | "
                     f"{r['pretrain_minutes']} min | {r['images_seen']:,} | {r['cpu_hours']} | {r['best_pair']} | "
                     f"{r['test_accuracy']:.1%} | {r['test_macro_f1']:.3f} | "
                     f"{100 * r['test_accuracy'] / max(r['cpu_hours'], 1e-3):.0f} |")
    table.append(f"| 32 | 64,128,128 | {reference['params'] / 1e6:.2f}M | {reference['pretrain_minutes']} min | "
                 f"{reference['images_seen']:,} | ~{reference['pretrain_minutes'] * 2 / 60:.1f} (training only) | "
                 f"{reference['best_pair']} | {reference['test_accuracy']:.1%} | {reference['test_macro_f1']:.3f} | "
                 f"(shipped model) |")
    table += ["", f"NDSB natural split of models/ndsb (121 classes); timesteps {a.timesteps} for the new rows; "
                  "wall-clock minutes on this machine's cores, shared with other work at times."]
    write("accuracy_per_cpu_hour", {"rows": rows, "reference": reference, "timesteps": list(timesteps)}, table)


if __name__ == "__main__":
    main()

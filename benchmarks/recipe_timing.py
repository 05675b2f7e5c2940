"""What the shipped classifier's recipe costs in fp32 and in bf16 on this machine: its two heavy stages, the
U-Net's pretraining and the 8-view feature extraction, timed as the recipe runs them (the same `diffprobe`
commands, configs/ndsb-classifier.toml's settings) on a short run, then scaled to the whole recipe.

    python benchmarks/recipe_timing.py --split models/ndsb/split.csv [--steps 10,70] [--images 64,448]

Each stage runs twice per precision, short and long, in a fresh process; the difference gives the rate without
the start-up (imports, decoding the split), and the start-up is added once. The recipe's light stages (linear
grid, fused MLP head with refit, export) are not timed here: they are taken from the recorded recipe
(benchmarks/results/ndsb_recipe_shape/timing.json), about 3 min of about 87. On a CPU without AMX,
`--precision auto` runs fp32: the fp32 column is the recipe's cost there (on this CPU's clock and caches).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, write

RECIPE_STEPS, BATCH = 3000, 64
FEATURES = ["--timesteps", "1,10", "--blocks", "down0,down1,down2,mid,up0,up1", "--pooling", "avgmax",
            "--views", "8", "--crop"]


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "diffprobe.cli", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def subset_split(split: Path, n: int, out: Path) -> Path:
    """Every k-th row of the split (all parts, so every class is read), with the split's root beside it."""
    rows = list(csv.DictReader(split.open()))
    keep = rows[:: max(1, len(rows) // n)][:n]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "split.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    shutil.copy(split.with_suffix(".json"), out / "split.json")
    return out / "split.csv"


def scaled(short: float, long: float, n_short: int, n_long: int, n_full: int) -> dict:
    per_unit = (long - short) / (n_long - n_short)
    startup = max(0.0, short - per_unit * n_short)
    return {"wall_s": {str(n_short): short, str(n_long): long}, "per_unit_s": per_unit, "startup_s": startup,
            "full_min": (startup + per_unit * n_full) / 60}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="models/ndsb/split.csv")
    ap.add_argument("--steps", default="10,70", help="short,long pretraining runs (steps of 64 images)")
    ap.add_argument("--images", default="64,448", help="short,long feature extraction runs (images)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--name", default="recipe_timing")
    a = ap.parse_args()
    split = Path(a.split)
    n_images = sum(1 for _ in csv.DictReader(split.open()))
    steps, images = [int(s) for s in a.steps.split(",")], [int(s) for s in a.images.split(",")]
    light = json.loads((RESULTS / "ndsb_recipe_shape" / "timing.json").read_text())["stages_s"]
    light_min = (light["probe_linear_grid"] + light["fuse_mlp_33_measurements_ks_4_6_8_12_and_refit"]) / 60
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subsets = {n: subset_split(split, n, tmp / f"subset{n}") for n in images}
        for p in a.precisions.split(","):
            pre = [timed("pretrain", "--data", str(split), "--out", str(tmp / f"pre-{p}-{s}"), "--steps", str(s),
                         "--batch-size", str(BATCH), "--precision", p) for s in steps]
            model = tmp / f"pre-{p}-{steps[0]}"
            feat = [timed("features", "--model", str(model), "--data", str(subsets[n]),
                          "--out", str(tmp / f"feat-{p}-{n}"), *FEATURES, "--precision", p) for n in images]
            rows[p] = {"pretrain": scaled(*pre, *steps, RECIPE_STEPS),
                       "features": scaled(*feat, *images, n_images)}
            rows[p]["recipe_min"] = rows[p]["pretrain"]["full_min"] + rows[p]["features"]["full_min"] + light_min
            print(p, json.dumps(rows[p]), flush=True)
    table = ["| precision | pretraining, 3000 steps | features, "
             f"{n_images:,} images x 8 views | + grid and head (recorded) | recipe |", "|---|---|---|---|---|"]
    for p, r in rows.items():
        table.append(f"| {p} | {r['pretrain']['full_min']:.0f} min ({BATCH / r['pretrain']['per_unit_s']:.1f} img/s) "
                     f"| {r['features']['full_min']:.0f} min ({1 / r['features']['per_unit_s']:.1f} img/s) "
                     f"| {light_min:.1f} min | **{r['recipe_min']:.0f} min** |")
    write(a.name, {"split": str(split), "steps": steps, "images": images, "recipe_steps": RECIPE_STEPS,
                   "features": FEATURES, "light_stages_min": light_min, "rows": rows}, table)


if __name__ == "__main__":
    main()

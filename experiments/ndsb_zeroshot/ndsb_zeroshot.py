"""The second paper's comparison on real NDSB data: zero-shot classification (no classifier trained on
labels) from an RC-DiT encoder, a DINO ViT of the same size trained on the same images for the same
budget, and the shipped DDPM U-Net (models/ndsb) at its probe's best (block, timestep).

    python experiments/ndsb_zeroshot/ndsb_zeroshot.py --out runs/ndsb-zeroshot

Every step is a diffprobe command (printed before it runs), so each can be re-run by hand. The split
is the shipped model's (models/ndsb/split.csv: natural, seed 0), so all three models see the same train
images; RC-DiT and DINO train on its train part for --budget-images images each. Resumable: finished
trainings and feature stores are reused. Writes experiments/ndsb_zeroshot/results/ndsb_zeroshot.json and .md.
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from pathlib import Path

from diffprobe.workflows.bench import writer
from diffprobe.utils import read_json

write = writer(__file__)  # results/<name>.json and .md beside this script

ROOT = Path(__file__).resolve().parents[2]  # the repository root


def run(*args: str) -> None:
    cmd = [sys.executable, "-m", "diffprobe.cli", *args]
    print("$ diffprobe " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def trained(run_dir: Path, steps: int) -> bool:
    s = run_dir / "summary.json"
    return s.is_file() and read_json(s).get("step", 0) >= steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="models/ndsb/split.csv")
    ap.add_argument("--ddpm", default="models/ndsb/backbone")
    ap.add_argument("--ddpm-results", default="models/ndsb/bundle.json",
                    help="the DDPM's best (block, timestep) and feature spec: a bundle.json or probe results.json")
    ap.add_argument("--out", default="runs/ndsb-zeroshot")
    ap.add_argument("--budget-images", type=int, default=64000)
    ap.add_argument("--positive", default="copepod_*")
    ap.add_argument("--dc-max-images", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    steps = math.ceil(a.budget_images / 64)
    common = ["--data", a.split, "--seed", str(a.seed)]
    # The shipped DDPM was trained without flat-fielding: the two new models see the same inputs.
    train = [*common, "--no-flatfield", "--resume"]

    rcdit, dino = out / "rcdit", out / "dino-vit"
    if not trained(rcdit, steps):
        run("rcdit-pretrain", *train, "--out", str(rcdit), "--steps", str(steps), "--batch-size", "64")
    if not trained(dino, math.ceil(a.budget_images / 128)):
        run("baseline", "--method", "dino", "--arch", "vit", *train, "--out", str(dino),
            "--budget-images", str(a.budget_images))

    best = read_json(a.ddpm_results)
    block, timestep = (best["best"]["block"], best["best"]["timestep"]) if "best" in best else (
        best["block"], best["timestep"])
    models = {
        "rcdit": (rcdit, ["--dc-max-images", str(a.dc_max_images)]),
        "dino": (dino, ["--block", "cls", "--no-diffusion"]),
        "ddpm": (Path(a.ddpm), ["--block", block, "--timestep", str(timestep),
                                "--pooling", best["feature_spec"]["pooling"],
                                "--n-noise", str(best["feature_spec"]["n_noise"]), "--no-diffusion"]),
    }
    results = {}
    for name, (model, extra) in models.items():
        zs = out / f"zs-{name}"
        if not (zs / "zeroshot.json").is_file():
            run("zeroshot", "--model", str(model), *common, "--out", str(zs), "--positive", a.positive, *extra)
        results[name] = read_json(zs / "zeroshot.json")

    shots = list(next(iter(results.values()))["prototypes"])
    table = ["| model | params | representation | " + " | ".join(f"prototypes {k}" for k in shots)
             + " | k-NN (weighted) | diffusion classifier | binary acc. / F1 (two prototypes) | binary F1 (k-NN) |",
             "|---|---|---|" + "---|" * len(shots) + "---|---|---|---|"]
    summary = {}
    for name, r in results.items():
        model = models[name][0]
        params = read_json(model / "summary.json")["params"]
        dc, b = r["diffusion_classifier"], r["binary"]
        dct = "–" if "skipped" in dc else (f"{dc['accuracy']:.1%} ({dc['n_images']} images, "
                                           f"{dc['calls_per_image']:.0f} calls/image; all-shot prototypes on the "
                                           f"same images {dc['prototypes_all_same_images']['accuracy']:.1%})")
        rep = r["representation"]
        table.append(f"| {name} | {params / 1e6:.2f}M | {rep['block']} t={rep['timestep']} | "
                     + " | ".join(f"{r['prototypes'][k]['accuracy']:.1%}" for k in shots)
                     + f" | {r['knn']['weighted']['accuracy']:.1%} | {dct} | "
                     f"{b['two_prototypes']['accuracy']:.1%} / {b['two_prototypes']['f1']:.3f} | {b['knn']['f1']:.3f} |")
        summary[name] = {"model": str(model), "params": params, "zeroshot": r}
    first = next(iter(results.values()))
    table += ["", f"{first['n_classes']} classes, chance (majority class) {first['chance_accuracy']:.1%}; "
                  f"binary task: {a.positive!r} against the rest. Shots: references per class (0 = all train images)."]
    write("ndsb_zeroshot", {"split": a.split, "budget_images": a.budget_images, "positive": a.positive,
                            "models": summary}, table)


if __name__ == "__main__":
    main()

"""Does the RC-DiT's denoiser use r, and does its encoder then classify? The paper's recipe against the design
options that the literature uses against a collapsed r (issue #24), at the same number of training images.

    python experiments/rcdit_conditioning/rcdit_conditioning.py --split models/ndsb/split.csv --out runs/rcdit-conditioning

Every variant trains an RC-DiT on the split's train part for --steps steps of 64 images (resumable: a finished
run is reused), then reads it two ways:
- the conditioning diagnostic of its EMA weights (``summary.json``'s ``conditioning``): per timestep bucket the
  denoising loss with each image's own r, another image's r (shuffled) and the null r; the relative gap
  (shuffled - own) / own says whether r is specific to the image (the issue's target: >= 10% above t = 200);
- zero-shot classification with r (``evaluate.zeroshot``: prototypes from all train images, weighted k-NN,
  and the binary task), no classifier trained on labels; the diffusion classifier only with --dc-max-images.

Two reference rows: ``untrained`` (one step at the warm-up's first learning rate: the encoder as initialised,
what zero-shot reads from a random ViT) and, with --dino-images, DINO on the same ViT (the study's baseline
config) for about the same CPU time, read the same way (its ``cls`` block).

Writes experiments/rcdit_conditioning/results/<--name>.json and .md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from diffprobe.workflows.bench import writer

from diffprobe.backbones.rcdit import RCDiTConfig, load_rcdit
from diffprobe.config.evaluate import DiffusionClassifierConfig, ZeroShotConfig
from diffprobe.config.pretrain import BaselineConfig, RCDiTPretrainConfig, default_arch
from diffprobe.data.dataset import load_split_images
from diffprobe.data.preprocess import Preprocess
from diffprobe.pretrain.baselines import train_baseline
from diffprobe.pretrain.rcdit import conditioning_gap, pretrain_rcdit
from diffprobe.utils import read_json
from diffprobe.workflows.zeroshot import zeroshot

write = writer(__file__)  # results/<name>.json and .md beside this script

# name -> (RCDiTConfig overrides, RCDiTPretrainConfig overrides); the first row is the paper's recipe.
VARIANTS = {
    "paper": ({}, {}),
    "r_tokens4": ({"r_tokens": 4}, {}),
    "t_high": ({}, {"t_sampling": "high"}),
    "encoder_augmented": ({}, {"encoder_view": "augmented"}),
    "no_r_dropout": ({}, {"r_dropout": 0.0}),
    "all_three": ({"r_tokens": 4}, {"t_sampling": "high", "encoder_view": "augmented"}),
    "v_prediction": ({"prediction": "v_prediction"}, {}),
    "v_r_tokens4": ({"prediction": "v_prediction", "r_tokens": 4}, {}),
    "v_t_high": ({"prediction": "v_prediction"}, {"t_sampling": "high"}),
    "untrained": ({}, {"steps": 1}),
}


NARROW = (200, 250)  # the target starts at t = 200, inside the diagnostic's first bucket


def relative_gaps(conditioning: dict) -> dict:
    """(shuffled - own) / own and (null - own) / own per bucket of a ``conditioning_gap`` result."""
    return {b: {"shuffled": (v["shuffled"] - v["own"]) / v["own"], "null": (v["null"] - v["own"]) / v["own"]}
            for b, v in conditioning.items()}


def seeded(name: str, seed: int) -> str:
    """A run's folder: the variant's name, with the seed unless it is 0 (the first runs were made without)."""
    return name if seed == 0 else f"{name}-seed{seed}"


def dino_row(a, images, seed: int) -> dict:
    """DINO on the RC-DiT encoder's ViT (the study's baseline config), read like the variants at its cls token."""
    cfg = BaselineConfig(method="dino", arch=default_arch("dino", 32, "vit"), budget_images=a.dino_images, seed=seed)
    run = Path(a.out) / seeded("dino", seed)
    if not (run / "summary.json").is_file():
        train_baseline(images.training_part(a.split)[0], run, cfg, resume=True)
    summary = read_json(run / "summary.json")
    done = run / "zeroshot" / "zeroshot.json"
    z = read_json(done) if done.is_file() else zeroshot(
        run, images, run / "zeroshot", ZeroShotConfig(block="cls", shots=(0,), positive=a.positive, diffusion=None,
                                                      seed=seed))
    return {"variant": f"DINO ({a.dino_images} images)", "seed": seed, "model": "vit", "training": {},
            "steps": summary["steps"], "train_minutes": round(summary["elapsed_s"] / 60, 1),
            "precision": summary.get("precision"), "conditioning": None, "relative_gap": None,
            "relative_gap_200_250": None, "prototypes": z["prototypes"]["all"], "knn": z["knn"]["weighted"],
            "diffusion_classifier": None,
            "binary": {k: z["binary"][k] for k in ("two_prototypes", "knn")} if "binary" in z else None}


def variant_row(a, name: str, seed: int, images) -> dict:
    """Train (or reuse) one variant at one seed and read its diagnostic and zero-shot accuracy."""
    model_kw, train_kw = VARIANTS[name]
    cfg = RCDiTPretrainConfig(model=replace(RCDiTConfig(), **model_kw), batch_size=64, seed=seed,
                              **{"steps": a.steps, **train_kw})
    run = Path(a.out) / seeded(name, seed)
    if not (run / "summary.json").is_file():
        pretrain_rcdit(images.training_part(a.split)[0], run, cfg, resume=True)
    summary = read_json(run / "summary.json")
    # untrained, the adaLN-zero gates are zero: the denoiser ignores r and every class scores the same
    dc = (DiffusionClassifierConfig(max_images=a.dc_max_images, t_range=a.dc_t_range, condition=a.dc_condition)
          if a.dc_max_images and name != "untrained" else None)
    t0 = time.time()
    zs_dir = run / ("zeroshot" if dc is None else f"zeroshot-dc-{a.dc_condition}-{a.dc_max_images}")
    done = zs_dir / "zeroshot.json"
    z = read_json(done) if done.is_file() else zeroshot(
        run, images, zs_dir, ZeroShotConfig(shots=(0,), positive=a.positive, diffusion=dc, seed=seed))
    # The target reads "every timestep above t = 200": the diagnostic's first bucket starts at 0, so
    # the stretch 200-250 is measured on its own, on more images.
    narrow = conditioning_gap(load_rcdit(run), images.training_part(a.split)[0], seed=seed,
                              per_bucket=256, buckets=(NARROW,))
    return {"variant": name, "seed": seed, "model": model_kw, "training": train_kw, "steps": cfg.steps,
            "train_minutes": round(summary["elapsed_s"] / 60, 1), "precision": summary.get("precision"),
            "conditioning": summary["conditioning"], "relative_gap": relative_gaps(summary["conditioning"]),
            "relative_gap_200_250": relative_gaps(narrow)[f"{NARROW[0]}-{NARROW[1]}"],
            "prototypes": z["prototypes"]["all"], "knn": z["knn"]["weighted"],
            "binary": {k: v for k, v in z["binary"].items() if k in ("two_prototypes", "knn", "diffusion_classifier")}
            if "binary" in z else None,
            "diffusion_classifier": z["diffusion_classifier"] if dc else None,
            "zeroshot_seconds": round(time.time() - t0, 1)}


def mean_rows(rows: list[dict]) -> list[str]:
    """Per variant over its seeds: mean (min-max) of the gaps above t = 200, k-NN and binary k-NN F1."""
    lines = ["| variant | seeds | min gap t >= 200 | gap t 750-1000 | k-NN | binary k-NN F1 |", "|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == name]

        def spread(values, fmt):
            return fmt.format(np.mean(values)) + (f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
                                                   if len(values) > 1 else "")

        gaps = [min([r["relative_gap_200_250"]["shuffled"]] + [v["shuffled"] for b, v in r["relative_gap"].items()
                                                                 if b not in ("all", "0-250")])
                for r in group if r["relative_gap"]]
        top = [r["relative_gap"]["750-1000"]["shuffled"] for r in group if r["relative_gap"]]
        f1 = [r["binary"]["knn"]["f1"] for r in group if r["binary"]]
        lines.append(f"| {name} | {len(group)} | " + (spread(gaps, "{:+.1%}") if gaps else "–") + " | "
                     + (spread(top, "{:+.1%}") if top else "–") + " | "
                     + spread([r["knn"]["accuracy"] for r in group], "{:.1%}") + " | "
                     + (spread(f1, "{:.3f}") if f1 else "–") + " |")
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="models/ndsb/split.csv")
    ap.add_argument("--out", default="runs/rcdit-conditioning")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=500, help="steps of 64 images per variant (the study's budget)")
    ap.add_argument("--positive", default="copepod_*", help="positive classes of the binary task")
    ap.add_argument("--dc-max-images", type=int, default=0, help="test images for the diffusion classifier (0: skip)")
    ap.add_argument("--dc-t-range", default="auto", help="timesteps of the diffusion classifier: LOW,HIGH or auto")
    ap.add_argument("--dc-condition", default="prototype", help="r per class: prototype or nearest")
    ap.add_argument("--dino-images", type=int, default=0,
                    help="also train DINO on the same ViT for this many images (0: skip; 28160 took about the "
                         "paper variant's time on a 2-core AMX Xeon)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; every variant (and DINO) runs at each")
    ap.add_argument("--dino-seeds", default="", help="seeds of the DINO rows (default: --seeds)")
    ap.add_argument("--name", default="rcdit_conditioning")
    a = ap.parse_args()
    names = a.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    seeds = [int(x) for x in a.seeds.split(",")]
    images = load_split_images(a.split, Preprocess.for_training(RCDiTPretrainConfig(steps=1)), report_dir=Path(a.out))
    rows = [variant_row(a, name, seed, images) for seed in seeds for name in names]
    if a.dino_images:
        rows += [dino_row(a, images, int(seed)) for seed in (a.dino_seeds.split(",") if a.dino_seeds else seeds)]
    buckets = [b for b in rows[0]["relative_gap"] if b != "all"]
    table = [f"# RC-DiT: does the denoiser use r? ({a.steps} steps of 64 images each, split {a.split})", "",
             "Relative conditioning gap (shuffled - own) / own of the EMA weights per timestep bucket (target: "
             ">= 10% above t = 200; t 200-250 measured on its own, 256 images), null - own overall, then zero-shot "
             "with r: prototypes from every train image, weighted k-NN, binary F1 (" + a.positive + " vs the rest; "
             "prototypes / k-NN).", "",
             "| variant | seed | train min | gap t 200-250 | " + " | ".join(f"gap t {b}" for b in buckets)
             + " | null gap | prototypes | k-NN | binary F1 |", "|---|---|---|---|" + "---|" * len(buckets)
             + "---|---|---|---|"]
    for r in rows:
        g, b, narrow = r["relative_gap"], r["binary"], r["relative_gap_200_250"]
        binary = f"{b['two_prototypes']['f1']:.3f} / {b['knn']['f1']:.3f}" if b else "–"
        gaps = ([f"{narrow['shuffled']:+.1%}"] + [f"{g[k]['shuffled']:+.1%}" for k in buckets]
                + [f"{g['all']['null']:+.1%}"]) if g else ["–"] * (len(buckets) + 2)
        table.append(f"| {r['variant']} | {r['seed']} | {r['train_minutes']:.1f} | " + " | ".join(gaps) + " | "
                     f"{r['prototypes']['accuracy']:.1%} | {r['knn']['accuracy']:.1%} | {binary} |")
    if len(seeds) > 1:
        table += ["", "Over the seeds: mean (lowest-highest). Min gap: the smallest of t 200-250 and the buckets above.",
                  ""] + mean_rows(rows)
    dcs = [r for r in rows if r["diffusion_classifier"]]
    if dcs:
        table += ["", "Diffusion classifier (timesteps " + a.dc_t_range + ", each class scored with its "
                  + {"prototype": "prototype r", "nearest": "reference nearest to the image"}[a.dc_condition]
                  + ") on a seeded subset of the test part, beside the prototypes on the same images:", "",
                  "| variant | seed | t range | images | diffusion classifier | prototypes, same images "
                  "| k-NN, same images | binary F1 |", "|---|---|---|---|---|---|---|---|"]
        for r in dcs:
            d = r["diffusion_classifier"]
            binary = (r["binary"] or {}).get("diffusion_classifier", {}).get("f1")
            table.append(f"| {r['variant']} | {r['seed']} | {d['t_range']} | {d['n_images']} | {d['accuracy']:.1%} | "
                         f"{d['prototypes_all_same_images']['accuracy']:.1%} | {d['knn_same_images']['accuracy']:.1%} | "
                         + (f"{binary:.3f}" if binary is not None else "–") + " |")
    write(a.name, {"split": a.split, "steps": a.steps, "batch_size": 64, "seeds": seeds, "rows": rows}, table)


if __name__ == "__main__":
    main()

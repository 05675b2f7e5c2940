"""EMA or raw weights at the probe? The accuracy issue's training lever, measured on one pretraining run.

``diffprobe pretrain`` exports the exponential moving average of the U-Net's weights (``ema_decay``); its
last checkpoint also holds the raw weights of the final step. This benchmark builds a second model folder
with the raw weights, extracts the same features from both (1 view, the shipped recipe's blocks and
timesteps) and runs the paper's linear probe grid on each (``diffprobe probe``'s own ``run_probe``). Val
picks each model's best pair; test is reported for it.

    diffprobe pretrain --data SPLIT.csv --out RUN --steps 900 --checkpoint-every 300
    python experiments/ema_vs_raw/ema_vs_raw.py --run RUN --work DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from diffprobe.workflows.bench import writer
from diffprobe.data.dataset import load_split_images
from diffprobe.data.preprocess import Preprocess
from diffprobe.features.extract import FeatureSpec
from diffprobe.features.store import extract_features
from diffprobe.pretrain.checkpoint import load_checkpoint
from diffprobe.workflows.probe import run_probe

write = writer(__file__)  # results/<name>.json and .md beside this script

UNET_WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def raw_model(run: Path, out: Path) -> Path:
    """A copy of ``run``'s exported model folder with the U-Net's raw (non-averaged) final weights."""
    ckpt = load_checkpoint(run / "checkpoint")
    if out.is_dir():
        shutil.rmtree(out)
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("checkpoint*", "*.csv", "*.png"))
    exported = load_file(run / UNET_WEIGHTS)
    raw = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    if set(raw) != set(exported):
        raise SystemExit(f"{run}: the checkpoint's weights do not match the exported U-Net's; was it written by "
                         f"this diffprobe?")
    save_file({k: raw[k].to(exported[k].dtype).contiguous() for k in exported}, out / UNET_WEIGHTS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="a 'diffprobe pretrain' output folder (with its checkpoint/)")
    ap.add_argument("--split", help="split CSV (default: the run's split.csv)")
    ap.add_argument("--work", required=True)
    ap.add_argument("--timesteps", default="1,10")
    ap.add_argument("--blocks", default="down0,down1,down2,mid,up0,up1")
    ap.add_argument("--name", default="ema_vs_raw")
    a = ap.parse_args()
    run, work = Path(a.run), Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = FeatureSpec(timesteps=tuple(int(t) for t in a.timesteps.split(",")), blocks=tuple(a.blocks.split(",")))
    images = load_split_images(a.split or run / "split.csv", Preprocess.from_dict(
        json.loads((run / "preprocess.json").read_text())))
    models = {"EMA (exported, the default)": run, "raw (last step)": raw_model(run, work / "raw_model")}
    rows = []
    for name, model in models.items():
        t0 = time.time()
        store = extract_features(model, images, spec, work / f"features_{'raw' if model != run else 'ema'}")
        r = run_probe(store, work / f"probe_{'raw' if model != run else 'ema'}", bundle=False)
        grid = r["grid"]
        rows.append({"weights": name, "best_pair": f"{r['best']['block']} t={r['best']['timestep']}",
                     "val_accuracy": r["best"]["val_accuracy"], "test_accuracy": r["best"]["test_accuracy"],
                     "test_macro_f1": r["best"]["test_macro_f1"],
                     "mean_val_accuracy_over_pairs": sum(g["val_accuracy"] for g in grid) / len(grid),
                     "seconds": round(time.time() - t0)})
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    table = ["# EMA against raw weights at the probe (linear grid, 1 view)", "",
             f"Run: {summary.get('step', '?')} pretraining steps ({summary.get('images_seen', '?')} images); pairs "
             f"{list(spec.blocks)} x t in {list(spec.timesteps)}; val "
             "picks the best pair of each model, test is read for it.", "",
             "| weights | best pair (val) | val acc | test acc | test macro F1 | mean val acc over pairs |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['weights']} | {r['best_pair']} | {r['val_accuracy']:.2%} | {r['test_accuracy']:.2%} | "
              f"{r['test_macro_f1']:.3f} | {r['mean_val_accuracy_over_pairs']:.2%} |" for r in rows]
    write(a.name, {"run": summary, "spec": spec.to_dict(), "rows": rows}, table)


if __name__ == "__main__":
    main()

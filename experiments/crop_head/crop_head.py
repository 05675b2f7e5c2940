"""The object-centred crop as a recipe choice: the shipped backbone's features read from images cut to their
organism (``diffprobe features --crop``), the same fused MLP head fitted on them, against the head fitted on
the images as framed; both fitted on train only, so val can compare them. Collects what the commands wrote:

    diffprobe features --model BACKBONE --data SPLIT --out F --crop ...   (and without --crop)
    diffprobe fuse --features STORE --results PROBE/results.json --head mlp --metadata --ks 4,6,8,12 --out FUSE
    diffprobe export FUSE/bundle --out M --fp32 --polarity auto
    diffprobe shift --model M --data SPLIT --part val --shifts margin,texture --severities 2 --out SHIFT
    diffprobe evaluate --model M --data SPC_IMAGES --class-map SPC_MAP --out SPC [--size-scale auto]

    python experiments/crop_head/crop_head.py --runs RUNS   (RUNS/{fuse,shift_val,spc}_{crop,nocrop}, RUNS/spc_{crop,nocrop}_scale)

With ``--variants crop --label crop=TEXT --name NAME`` it collects one run of another recipe (e.g. the shape
measurements: ``shape_head``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffprobe.workflows.bench import shifted_accuracy, writer, zero_shot_cells, zero_shot_metrics

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="folder holding the runs named as above")
    ap.add_argument("--variants", default="nocrop,crop", help="the run suffixes to collect, in table order")
    ap.add_argument("--label", action="append", default=[], metavar="VARIANT=TEXT",
                    help="a row's name in the table (default: framed as imaged / cut to the organism)")
    ap.add_argument("--name", default="crop_head")
    a = ap.parse_args()
    runs = Path(a.runs)
    read = lambda p: json.loads((runs / p).read_text())  # noqa: E731
    rows = {}
    variants = a.variants.split(",")
    for variant in variants:
        best = read(f"fuse_{variant}/fusion.json")["best"]
        shift = read(f"shift_val_{variant}/shift.json")
        rows[variant] = {
            "k": best["k"], "val_accuracy": best["val_accuracy"], "val_log_loss": best["val_log_loss"],
            "test_accuracy": best["test_accuracy"], "test_macro_f1": best["test_macro_f1"],
            "test_log_loss": best["test_log_loss"],
            "val_shifted": shifted_accuracy(shift),
            "spc_zero_shot": zero_shot_metrics(runs, {"spc": f"spc_{variant}", "spc_scale": f"spc_{variant}_scale"}),
        }
    names = {"nocrop": "framed as imaged", "crop": "cut to the organism (`--crop`)",
             **dict(label.split("=", 1) for label in a.label)}
    shifts = list(rows[variants[-1]]["val_shifted"])
    table = ["| features read from | k | val top-1 | " + " | ".join(
        f"val, {s} {rows[variants[-1]]['val_shifted'][s]['level']}" for s in shifts)
        + " | test top-1 | test macro F1 | test log loss | SPC zero-shot acc / F1 | same, --size-scale auto |",
        "|---" * (8 + len(shifts)) + "|"]
    for v, r in rows.items():
        table.append(f"| {names[v]} | {r['k']} | {r['val_accuracy']:.2%} | " + " | ".join(
            f"{r['val_shifted'][s]['accuracy']:.1%}" for s in shifts)
            + f" | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.3f} | {r['test_log_loss']:.3f} | "
            + " | ".join(zero_shot_cells(r)) + " |")
    write(a.name, {"runs": str(runs), "rows": rows}, table)


if __name__ == "__main__":
    main()

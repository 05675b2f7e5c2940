"""Two readings against one, where instruments differ: the ensemble of the head on the images cut to their
organism and the head on the images as framed (``diffprobe ensemble``), against each alone, on val as imaged,
val under the two instrument-like shifts that cost most (a looser framing, a textured background) and the
Scripps Plankton Camera zero-shot. Every head fitted on train only, so val can compare them; test read once
per row. Collects what the commands wrote:

    python experiments/reading_ensemble/crop_frame_ensemble.py ... --name NAME          (val and test of the train-only heads)
    diffprobe ensemble CROP_FUSE/bundle FRAME_FUSE/bundle --out ENS    (calibrated on val)
    diffprobe shift --model ENS --data SPLIT --part val --shifts margin,texture --severities 2 --out RUNS/shift_val_ensemble
    diffprobe evaluate --model ENS --data SPC_IMAGES --class-map SPC_MAP --out RUNS/spc_ensemble [--size-scale auto]

    python experiments/reading_ensemble/reading_ensemble.py --runs RUNS --heads NAME

The one-reading rows come from ``crop_head.json`` (the same backbone, heads and shifts, measured before).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffprobe.workflows.bench import shifted_accuracy, writer, zero_shot_cells, zero_shot_metrics

EXPERIMENTS = Path(__file__).resolve().parents[1]
write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="folder holding shift_val_ensemble/ and spc_ensemble*/")
    ap.add_argument("--heads", default="crop_frame_ensemble", help="the crop_frame_ensemble result's name")
    ap.add_argument("--name", default="reading_ensemble")
    a = ap.parse_args()
    runs = Path(a.runs)
    read = lambda p: json.loads(Path(p).read_text())  # noqa: E731
    single = read(EXPERIMENTS / "crop_head" / "results" / "crop_head.json")["rows"]
    heads = read(EXPERIMENTS / "crop_frame_ensemble" / "results" / f"{a.heads}.json")["rows"]
    shift = read(runs / "shift_val_ensemble" / "shift.json")
    both = heads["crop + frame"]
    rows = {"frame": single["nocrop"], "crop": single["crop"], "crop + frame": {
        "val_accuracy": both["val_accuracy"], "test_accuracy": both["test_accuracy"],
        "test_macro_f1": both["test_macro_f1"], "test_log_loss": both["test_log_loss"],
        "val_shifted": shifted_accuracy(shift),
        "spc_zero_shot": zero_shot_metrics(runs, {"spc": "spc_ensemble", "spc_scale": "spc_ensemble_scale"})}}
    names = {"frame": "as framed", "crop": "cut to the organism (shipped)",
             "crop + frame": "both, a head each, log-probabilities averaged"}
    shifts = list(rows["crop + frame"]["val_shifted"])
    table = ["| features read | val top-1 | " + " | ".join(
        f"val, {s} {rows['crop + frame']['val_shifted'][s]['level']}" for s in shifts)
        + " | SPC zero-shot acc / F1 | same, --size-scale auto | test top-1 | test macro F1 |",
        "|---" * (6 + len(shifts)) + "|"]
    for v, r in rows.items():
        table.append(f"| {names[v]} | {r['val_accuracy']:.2%} | " + " | ".join(
            f"{r['val_shifted'][s]['accuracy']:.1%}" for s in shifts)
            + " | " + " | ".join(zero_shot_cells(r)) + f" | {r['test_accuracy']:.2%} | {r['test_macro_f1']:.3f} |")
    table += ["", ("Heads fitted on train only (the recipe's settings: top-k pairs + object metadata, 8 views); the "
                   "one-reading rows from `crop_head.json`, the ensemble's val and test from "
                   f"`{a.heads}.json` (log-probabilities averaged, before temperature).")]
    write(a.name, {"runs": str(runs), "heads": a.heads, "rows": rows}, table)


if __name__ == "__main__":
    main()

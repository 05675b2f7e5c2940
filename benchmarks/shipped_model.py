"""The shipped model (models/ndsb) on the NDSB test split: the full check, and the stored subset the suite uses.

Two commands, run from the repository root with the venv active and ``$DIFFPROBE_DATA`` set (the folder that
holds ``ndsb/images``):

    python benchmarks/shipped_model.py full
        Evaluates the model on all 3,619 test images of its split (16 U-Net forwards each: about 12 min on 2
        cores of a CPU without AMX) and compares accuracy and macro F1 with the model card
        (``test_metrics.json``, made in bf16, or ``test_metrics_fp32.json`` where this machine runs fp32).
        Exits 1 when either number misses the card by more than the tolerance (0.003 / 0.005).
        Not a test: it is too slow for the suite.

    python benchmarks/shipped_model.py subset [--n 240] [--seed 0]
        Draws ``n`` test images of the split with ``numpy.random.default_rng(seed)`` and writes, beside the
        model, ``test_predictions_subset.csv``: one row per image, ``path`` (as in split.csv), ``label`` (its
        true class), ``predicted`` (the top class), ``probability`` (its calibrated probability, as
        ``diffprobe predict`` writes it) and ``precision`` (of the forward pass; fp32 always, so the
        reference does not depend on the machine), and ``test_predictions_subset.json`` (how it was made).
        ``tests/test_shipped_model.py`` re-reads these images and compares its predictions with the stored ones
        within a tolerance that bf16 rounding survives. Rerun it whenever the shipped model changes.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffprobe import load_bundle
from diffprobe.data.manifest import Manifest
from diffprobe.evaluate.predict import predict_paths
from diffprobe.utils import resolve_precision
from diffprobe.workflows.evaluate import evaluate_bundle

MODEL = Path(__file__).resolve().parents[1] / "models" / "ndsb"
SUBSET_CSV = MODEL / "test_predictions_subset.csv"
COLUMNS = ("path", "label", "predicted", "probability", "precision")
TOLERANCE = {"accuracy": 0.003, "macro_f1": 0.005}


def draw_test_subset(split_csv: Path, n: int, seed: int) -> Manifest:
    """``n`` images of the split's test part, drawn without replacement by ``default_rng(seed)``, in split order."""
    m = Manifest.load(split_csv)
    test = np.flatnonzero(m.split_mask("test"))
    chosen = np.zeros(len(m), dtype=bool)
    chosen[np.random.default_rng(seed).choice(test, size=min(n, len(test)), replace=False)] = True
    return m.subset(chosen)


def store_subset_predictions(model: Path = MODEL, n: int = 240, seed: int = 0, out: Path | None = None) -> Path:
    """Classify a seeded subset of the model's test split in fp32 and write the per-image predictions CSV
    (columns ``COLUMNS``) and a JSON sidecar describing how it was made. Returns the CSV's path."""
    out = out or model / SUBSET_CSV.name
    m = draw_test_subset(model / "split.csv", n, seed)
    bundle = load_bundle(model, precision="fp32")
    t0 = time.time()
    rows = predict_paths(bundle, [m.full_path(i) for i in range(len(m))])
    if len(rows) != len(m):
        raise SystemExit(f"{len(m) - len(rows)} of the {len(m)} images could not be read")
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for path, label, row in zip(m.paths, m.labels, rows, strict=True):
            w.writerow([path, label, row["label"], row["probability"], "fp32"])
    acc = float(np.mean([row["label"] == lab for row, lab in zip(rows, m.labels, strict=True)]))
    sidecar = {"command": f"python benchmarks/shipped_model.py subset --n {n} --seed {seed}",
               "draw": f"numpy.random.default_rng({seed}).choice(test indices of split.csv, {len(m)}, replace=False)",
               "n_images": len(m), "precision": "fp32", "accuracy": acc, "torch": torch.__version__}
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"{out}: {len(m)} images, accuracy {acc:.3f} (fp32, {time.time() - t0:.0f} s)")
    return out


def full_split(model: Path = MODEL, out: Path | None = None) -> int:
    """Evaluate the model on its whole test split; 0 when accuracy and macro F1 match the card, else 1."""
    import tempfile

    precision = resolve_precision("auto")
    card_file = model / ("test_metrics.json" if precision == "bf16" else "test_metrics_fp32.json")
    card = json.loads(card_file.read_text())
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        r = evaluate_bundle(model, model / "split.csv", out or Path(tmp), part="test", progress=True)
    seconds = time.time() - t0
    print(f"| metric | this run ({r['precision']}) | {card_file.name} | tolerance |\n|---|---|---|---|")
    ok = r["n_images"] == card["n_images"]
    print(f"| images | {r['n_images']} | {card['n_images']} | 0 |")
    for key, tol in TOLERANCE.items():
        ok &= abs(r[key] - card[key]) <= tol
        print(f"| {key} | {r[key]:.4f} | {card[key]:.4f} | {tol} |")
    print(f"\n{seconds:.0f} s; {'matches the card' if ok else 'MISSES the card'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    f = sub.add_parser("full", help="the whole test split against the model card (about 12 min on 2 cores)")
    f.add_argument("--out", type=Path, help="keep the evaluation's report here")
    s = sub.add_parser("subset", help="write models/ndsb/test_predictions_subset.csv (fp32)")
    s.add_argument("--n", type=int, default=240)
    s.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.command == "full":
        return full_split(out=args.out)
    store_subset_predictions(n=args.n, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

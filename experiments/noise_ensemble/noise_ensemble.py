"""Noise-ensembled features against one noise draw, at a probe's best (block, timestep) pair.

    python experiments/noise_ensemble/noise_ensemble.py --model runs/study-ndsb/ddpm --split runs/study-ndsb/split.csv \
        --probe runs/study-ndsb/probe-seed0 --n-noise 4

Reads the probe folder's results.json (which pair won on val, its pooling and noise seed, and its scores:
the reference row, as probed there), extracts that one pair's features averaged over K noise draws for each
K in --n-noise, probes each with the probe's own settings and records val and test scores (choose K on val)
and the extraction time. Resumable: feature stores are cached under --work. Writes
experiments/noise_ensemble/results/noise_ensemble.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from diffprobe.workflows.bench import MemorySampler, writer
from diffprobe.workflows import pipeline
from diffprobe.features import FeatureSpec
from diffprobe.probe import GridProbe
from diffprobe.workflows.probe import run_probe
from diffprobe.utils import read_json

write = writer(__file__)  # results/<name>.json and .md beside this script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the model the probe's features came from")
    ap.add_argument("--split", required=True, help="the split CSV they were extracted on")
    ap.add_argument("--probe", required=True, help="a 'diffprobe probe' output folder (its results.json is read)")
    ap.add_argument("--n-noise", type=int, nargs="+", default=[4])
    ap.add_argument("--work", default="runs/noise_ensemble")
    a = ap.parse_args()
    res = read_json(Path(a.probe) / "results.json")
    model, split, best = a.model, a.split, res["best"]
    rows = [{"n_noise": res["feature_spec"]["n_noise"], "extract_minutes": None, "source": "the probe's own grid",
             **{m: best[m] for m in ("val_accuracy", "test_accuracy", "test_macro_f1")}}]
    settings = {k: res["probe"][k] for k in ("epochs", "lr", "weight_decays", "class_balanced", "patience", "whiten")}
    for k in a.n_noise:
        spec = FeatureSpec(timesteps=(best["timestep"],), blocks=(best["block"],),
                           pooling=res["feature_spec"]["pooling"], n_noise=k, seed=res["feature_spec"]["seed"])
        mem, t0 = MemorySampler(), time.time()
        store = pipeline.run_features(model, split, Path(a.work) / "features", spec)
        extract_s = time.time() - t0
        probe = GridProbe(**{**settings, "weight_decays": tuple(settings["weight_decays"])}, seed=res["probe"]["seed"])
        r = run_probe(store, Path(a.work) / f"probe-k{k}", probe=probe, bundle=False)["best"]
        rows.append({"n_noise": k, "extract_minutes": round(extract_s / 60, 1), "source": "re-extracted", **mem.stop(),
                     **{m: r[m] for m in ("val_accuracy", "test_accuracy", "test_macro_f1")}})
        print(rows[-1], flush=True)
    table = [f"Pair `{best['block']}` t={best['timestep']} of {a.probe}; the same probe settings and seed for "
             "every K; extraction minutes include reading cached images.", "",
             "| noise draws K | features | val top-1 | test top-1 | test macro F1 | extraction |",
             "|---|---|---|---|---|---|"]
    minutes = ["–" if r["extract_minutes"] is None else f"{r['extract_minutes']} min" for r in rows]
    table += [f"| {r['n_noise']} | {r['source']} | {r['val_accuracy']:.1%} | {r['test_accuracy']:.1%} | "
              f"{r['test_macro_f1']:.3f} | {m} |" for r, m in zip(rows, minutes)]
    write("noise_ensemble", {"probe": a.probe, "pair": {"block": best["block"], "timestep": best["timestep"]},
                             "rows": rows}, table)


if __name__ == "__main__":
    main()

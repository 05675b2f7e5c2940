"""Cross-instrument transfer: a bundle trained on SOURCE data, evaluated on a TARGET dataset of another
instrument through a class map, without target labels (zero-shot) and after few-shot adaptation
(``workflows.adapt``: logistic regression on the frozen features) with 1, 5, 10, 20, 50 labelled images
per group, over several random draws (mean +- std of macro F1 on the target images not drawn).

Zero-shot is reported with the bundle's own preprocessing and with ``polarity=auto`` (each image's
background decides whether it is inverted, so a dark-field target meets a bright-field model halfway).
Several bundles (e.g. DDPM features and a baseline's) can be given to compare them on the same draws.

    python benchmarks/transfer.py TARGET --class-map MAP --models BUNDLE [BUNDLE ...] [--name transfer_spc]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from _common import RESULTS, machine, write  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from diffprobe.evaluate.crossdata import evaluate_bundle  # noqa: E402
from diffprobe.probe.bundle import ClassifierBundle  # noqa: E402
from diffprobe.probe.metrics import classification_metrics  # noqa: E402
from diffprobe.workflows.adapt import adaptation_features, fit_adapted_head  # noqa: E402


def draw(y: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``shots`` images per class (all but one where a class has fewer: one is kept to test)."""
    idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        idx += rng.choice(members, min(shots, len(members) - 1), replace=False).tolist()
    return np.array(sorted(idx))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target", help="labelled target images: folder, manifest or EcoTaxa TSV")
    ap.add_argument("--class-map", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="bundle folders (trained on the source data)")
    ap.add_argument("--shots", default="1,5,10,20,50")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--name", default="transfer")
    a = ap.parse_args()
    shots = [int(s) for s in a.shots.split(",")]
    results = {}
    for model in a.models:
        bundle = ClassifierBundle.load(model)
        r = {"zero_shot": {}}
        for polarity in ("fixed", "auto"):
            b = replace(bundle, meta={**bundle.meta, "preprocess": {**bundle.meta["preprocess"], "polarity": polarity}})
            with tempfile.TemporaryDirectory() as tmp:
                ev = evaluate_bundle(b, a.target, tmp, class_map=a.class_map, progress=False)
            r["zero_shot"][polarity] = {k: ev[k] for k in ("accuracy", "macro_f1", "chance_accuracy", "n_images")}
            print(model, "zero-shot", polarity, r["zero_shot"][polarity], flush=True)
        t0 = time.time()
        x, y, groups, _ = adaptation_features(bundle, a.target, a.class_map, progress=False)
        r["feature_seconds"] = time.time() - t0
        r["groups"], r["n_images"] = groups, len(y)
        r["few_shot"] = {}
        for k in shots:
            f1s, accs, secs = [], [], []
            for d in range(a.draws):
                tr = draw(y, k, np.random.default_rng(1000 * k + d))
                te = np.setdiff1d(np.arange(len(y)), tr)
                t0 = time.time()
                if min(np.bincount(y[tr])) < 2:  # one shot per class: no cross-validation, fixed C
                    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x[tr], y[tr])
                    pred = clf.predict(x[te])
                else:
                    head = fit_adapted_head(x[tr], y[tr], seed=d)[0]
                    pred = head.logits(x[te]).argmax(1)
                secs.append(time.time() - t0)
                met = classification_metrics(y[te], pred)
                f1s.append(met["macro_f1"])
                accs.append(met["accuracy"])
            r["few_shot"][str(k)] = {"macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
                                     "accuracy_mean": float(np.mean(accs)), "fit_seconds_mean": float(np.mean(secs)),
                                     "draws": a.draws}
            print(model, k, "shots:", r["few_shot"][str(k)], flush=True)
        results[model] = r

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, r in results.items():
        ks = [int(k) for k in r["few_shot"]]
        mean = np.array([r["few_shot"][str(k)]["macro_f1_mean"] for k in ks])
        std = np.array([r["few_shot"][str(k)]["macro_f1_std"] for k in ks])
        line = ax.errorbar(ks, mean, yerr=std, marker="o", capsize=3, label=f"{model} (adapted)")
        ax.axhline(r["zero_shot"]["auto"]["macro_f1"], ls="--", color=line[0].get_color(), label=f"{model} zero-shot")
    ax.set_xscale("log")
    ax.set_xlabel("labelled target images per group")
    ax.set_ylabel("macro F1 on the other target images")
    ax.set_title(f"Transfer to {a.target.rstrip('/').split('/')[-2] if '/' in a.target else a.target}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{a.name}.png", dpi=120)
    table = ["| model | zero-shot F1 (polarity fixed: bright-field inversion) | zero-shot F1 (polarity auto) | "
             + " | ".join(f"{k} shots F1" for k in shots) + " |", "|---" * (3 + len(shots)) + "|"]
    for model, r in results.items():
        z = r["zero_shot"]
        table.append(f"| {model} | {z['fixed']['macro_f1']:.3f} | {z['auto']['macro_f1']:.3f} | " + " | ".join(
            f"{r['few_shot'][str(k)]['macro_f1_mean']:.3f} +- {r['few_shot'][str(k)]['macro_f1_std']:.3f}"
            for k in shots) + " |")
    write(a.name, {"machine": machine(), "class_map": a.class_map, "shots": shots, "draws": a.draws,
                   "results": results}, table)


if __name__ == "__main__":
    main()

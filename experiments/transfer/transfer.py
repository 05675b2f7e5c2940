"""Cross-instrument transfer: a bundle trained on SOURCE data, evaluated on a TARGET dataset of another
instrument through a class map, without target labels (zero-shot) and after few-shot adaptation
(``workflows.adapt``: logistic regression on the frozen features, on the bundle's hidden layer, and the
choice between them that ``adapt`` makes by default) with 1, 5, 10, 20, 50 labelled images per group, over
several random draws (mean +- std of macro F1 on the target images not drawn).

Zero-shot is reported with the bundle's own preprocessing and with ``polarity=auto`` (each image's
background decides whether it is inverted, so a dark-field target meets a bright-field model halfway).
Several bundles (e.g. DDPM features and a baseline's) can be given to compare them on the same draws.

    python experiments/transfer/transfer.py TARGET --class-map MAP --models BUNDLE [BUNDLE ...] [--name transfer_spc]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffprobe.workflows.bench import machine, results_dir, writer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from diffprobe.probe.bundle import ClassifierBundle  # noqa: E402
from diffprobe.probe.metrics import classification_metrics  # noqa: E402
from diffprobe.probe.mlp import MLPHead  # noqa: E402
from diffprobe.probe.readout import fit_readout  # noqa: E402
from diffprobe.workflows.adapt import adaptation_features  # noqa: E402
from diffprobe.workflows.evaluate import evaluate_bundle  # noqa: E402

RESULTS = results_dir(__file__)  # results/ beside this script
write = writer(__file__)  # results/<name>.json and .md beside this script


def draw(y: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``shots`` images per class (all but one where a class has fewer: one is kept to test)."""
    idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        idx += rng.choice(members, min(shots, len(members) - 1), replace=False).tolist()
    return np.array(sorted(idx))


# (name, polarity, crop) of the zero-shot readings: as trained, each image's background deciding the
# polarity, and that plus the crop to the organism (``data.preprocess``).
ZERO_SHOT = (("fixed", "fixed", False), ("auto", "auto", False), ("auto_crop", "auto", True))
READOUTS = ("features", "hidden", "auto")  # what the adapted head reads (probe.readout.fit_readout)
# (result key, line style, label) of each few-shot curve
CURVES = (("few_shot", "-", "frame kept, features"), ("few_shot_hidden", "-", "frame kept, hidden layer"),
          ("few_shot_auto", "-", "frame kept, auto (adapt's default)"),
          ("few_shot_crop", ":", "cropped, features"), ("few_shot_crop_hidden", ":", "cropped, hidden layer"),
          ("few_shot_crop_auto", ":", "cropped, auto (adapt's default)"))


def few_shot(x: np.ndarray, y: np.ndarray, shots: list[int], draws: int, *, source=None,
             readout: str = "features") -> dict:
    """Macro F1 / accuracy (mean, std over ``draws``) of the adapted head at each number of shots per group,
    tested on the images not drawn. ``readout`` and ``source`` (the bundle's head) as in
    ``probe.readout.fit_readout``; with one shot per group (no cross-validation, so no choice: ``auto`` is
    not reported there) a fixed-C regression on the readout's inputs."""
    out = {}
    for k in shots:
        f1s, accs, secs = [], [], []
        for d in range(draws):
            tr = draw(y, k, np.random.default_rng(1000 * k + d))
            te = np.setdiff1d(np.arange(len(y)), tr)
            t0 = time.time()
            if min(np.bincount(y[tr])) < 2:  # one shot per class: no cross-validation, fixed C
                if readout == "auto":
                    break
                z = source.hidden(x) if readout == "hidden" else x
                clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(z[tr], y[tr])
                pred = clf.predict(z[te])
            else:
                head = fit_readout(source, x[tr], y[tr], readout=readout, seed=d)[0]
                pred = head.logits(x[te]).argmax(1)
            secs.append(time.time() - t0)
            met = classification_metrics(y[te], pred)
            f1s.append(met["macro_f1"])
            accs.append(met["accuracy"])
        if not f1s:
            continue
        out[str(k)] = {"macro_f1_mean": float(np.mean(f1s)), "macro_f1_std": float(np.std(f1s)),
                       "accuracy_mean": float(np.mean(accs)), "fit_seconds_mean": float(np.mean(secs)), "draws": draws}
    return out


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
        for name, polarity, crop in ZERO_SHOT:
            pre = {**bundle.meta["preprocess"], "polarity": polarity, "crop": crop}
            b = replace(bundle, meta={**bundle.meta, "preprocess": pre})
            with tempfile.TemporaryDirectory() as tmp:
                ev = evaluate_bundle(b, a.target, tmp, class_map=a.class_map, progress=False)
            r["zero_shot"][name] = {k: ev[k] for k in ("accuracy", "macro_f1", "chance_accuracy", "n_images")}
            print(model, "zero-shot", name, r["zero_shot"][name], flush=True)
        for crop in (False, True):
            key = "few_shot_crop" if crop else "few_shot"
            t0 = time.time()
            x, y, groups, _ = adaptation_features(bundle, a.target, a.class_map, crop=crop, progress=False)
            r[f"{key}_feature_seconds"] = time.time() - t0
            r["groups"], r["n_images"] = groups, len(y)
            for readout in READOUTS if isinstance(bundle.head, MLPHead) else ("features",):
                name = key if readout == "features" else f"{key}_{readout}"
                r[name] = few_shot(x, y, shots, a.draws, source=bundle.head, readout=readout)
                for k, v in r[name].items():
                    print(model, name, k, "shots:", v, flush=True)
        results[model] = r

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, r in results.items():
        for key, style, label in CURVES:
            if key not in r:
                continue
            ks = [int(k) for k in r[key]]
            mean = np.array([r[key][str(k)]["macro_f1_mean"] for k in ks])
            std = np.array([r[key][str(k)]["macro_f1_std"] for k in ks])
            ax.errorbar(ks, mean, yerr=std, marker="o", ls=style, capsize=3, label=f"{model} adapted, {label}")
        ax.axhline(max(z["macro_f1"] for z in r["zero_shot"].values()), ls="--", color="grey",
                   label=f"{model} best zero-shot")
    ax.set_xscale("log")
    ax.set_xlabel("labelled target images per group")
    ax.set_ylabel("macro F1 on the other target images")
    ax.set_title(f"Transfer to {a.target.rstrip('/').split('/')[-2] if '/' in a.target else a.target}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{a.name}.png", dpi=120)
    table = ["| model | images | zero-shot F1 | " + " | ".join(f"{k} shots F1" for k in shots) + " |",
             "|---" * (3 + len(shots)) + "|"]
    for model, r in results.items():
        z = r["zero_shot"]
        for key, label in ((k, lab) for k, _, lab in CURVES if k in r):
            zname = "auto_crop" if "crop" in key else "auto"
            table.append(f"| {model} | {label} | {z[zname]['macro_f1']:.3f} | " + " | ".join(
                f"{r[key][str(k)]['macro_f1_mean']:.3f} +- {r[key][str(k)]['macro_f1_std']:.3f}"
                if str(k) in r[key] else "" for k in shots) + " |")
        table.append(f"| {model} | frame kept, polarity as trained (bright-field inversion) | "
                     f"{z['fixed']['macro_f1']:.3f} |" + " |" * len(shots))
    write(a.name, {"machine": machine(), "class_map": Path(a.class_map).name, "shots": shots, "draws": a.draws,
                   "results": results}, table)


if __name__ == "__main__":
    main()

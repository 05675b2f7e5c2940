"""How many decisions does a person need to label a collection with the app? A simulated annotator who knows
the true labels works through a features file with four strategies; and (``--timing``) how fast the server
answers at 25,000 and 250,000 objects.

    python benchmarks/annotation.py --features runs/ndsb-test.npz --name ndsb_test --bundle models/ndsb
    python benchmarks/annotation.py --features runs/spc.npz --name spc --bundle models/ndsb
    python benchmarks/annotation.py --timing --sizes 25000 250000
    python benchmarks/annotation.py --features runs/ndsb-test.npz --name ndsb_test --strategies active_learning --merge

The features file is a ``.npz`` with ``features`` (N, D) float, ``labels`` (N,) int and optionally ``probs``
(N, C) of a model (a bundle's predictions; C = the number of label values), ``classes`` (C names) and ``info``
(a JSON string kept in the results: where the file came from). Without ``probs``, the app's own head
(``app.learn.fit_and_predict``) fitted on every true label stands in for the bundle: each image gets its
cross-validated prediction, from a model that did not see it. ``benchmarks/bundle_features.py`` makes the file
from a bundle and a split, or from an app project (``diffprobe app init``) and a class map (another instrument's
images, the bundle's classes summed into groups as ``diffprobe evaluate --class-map`` does).

The simulated annotator (its strategies, ``simulate``, ``merged``) is ``diffprobe.app.annotator``; this script
reads the features file, runs it, and writes the results; ``--timing`` measures the server on
``diffprobe.app.simulate.synthetic_project``. Strategies: ``one_at_a_time``, ``confidence_pages``,
``cluster_grow`` (MorphoCluster's workflow) and ``active_learning`` (``--retrain-every`` pages per retrain, as the
Retrain button does it, reading the bundle's hidden layer when ``--bundle`` names the bundle whose head inputs
the features are); ``diffprobe.app.annotator``'s docstring says what each does.

Reported per strategy and target (``--targets``, default 60/70/80/90% of the images): decisions until that share
of the images is validated (correctly: the annotator is perfect), and, with a model, decisions until that share
is **labelled right**, counting the prediction each image not yet validated carries at that moment, and the
images per decision there (share x N / decisions). Writes ``benchmarks/results/annotation_<name>.json`` and
``.md``. The clustering, splitting, growing, the choice of the next images and the retrain are the app's own
functions (``diffprobe.app.learn``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from diffprobe.app.annotator import PAGE, RETRAIN_EVERY, STRATEGIES, merged, simulate
from diffprobe.app.project import Project
from diffprobe.app.simulate import synthetic_project

REPORTED = (0.6, 0.7, 0.8, 0.9)  # the command line's default (--targets)


def annotation_table(result: dict, source: str) -> list[str]:
    targets = [str(t) for t in result["targets"]]
    shares = [f"{float(t):.0%}" for t in targets]
    top = targets[-2:]  # images per decision at the two highest targets
    goal = result.get("goal") or {}
    table = [f"{source}: {result['n']} images, {result['n_classes']} classes; model: {result['model']} "
             f"(top-1 {result['model_accuracy']:.1%}). Decisions (one per image handled alone, one per action on a "
             f"group) until that share of the images is validated, and until it is labelled right (validated, or "
             f"not yet validated and predicted right by the model of the moment); images labelled right per "
             f"decision there. Active learning retrains the head every {result['retrain_every']} pages (reading "
             f"{result.get('retrain_reads', 'the features')}); retrain wall time: total, and mean per retrain.", "",
             f"| strategy | validated {' | '.join(shares)} | labelled right {' | '.join(shares)} | "
             f"images per decision at {' / '.join(f'{float(t):.0%}' for t in top)} | retrains | seconds |",
             "|---|" + "---|" * (2 * len(targets) + 3)]
    for name, r in result["strategies"].items():
        right = r["decisions_with_predictions"]
        cells = [f"{r['decisions'][t] if r['decisions'][t] is not None else '–'}" for t in targets]
        cells += [f"{right[t] if right[t] is not None else '–'}" if right else "–" for t in targets]
        first = right or r["decisions"]
        rates = [r.get("images_per_decision", {}).get(t) for t in top]
        rate = " / ".join(f"{x}" if x is not None else "no decision needed" if first[t] == 0 else "–"
                          for t, x in zip(top, rates, strict=True))
        if goal.get("met") is not None and name in goal["met"]:
            rate += " (meets the goal)" if goal["met"][name] else ""
        retrains = (f"{r['retrains']}: {r['retrain_seconds_total']} s ({r['retrain_seconds_mean']} s each)"
                    if r.get("retrain_seconds_total") is not None and r.get("retrains") else "–")
        cells += [rate, retrains, f"{r['seconds']}"]
        table.append(f"| {name} | {' | '.join(cells)} |")
    return table


# ---- server timing ----------------------------------------------------------------------------------------------------
def _median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 1)


def timing(n: int, *, dim: int, n_classes: int, n_validated_classes: int = 20, per_class: int = 20) -> dict:
    """Response times of the server on a synthetic project of ``n`` objects (milliseconds)."""
    from fastapi.testclient import TestClient  # noqa: PLC0415 - only the timing mode serves

    from diffprobe.app.server import create_app  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        synthetic_project(Path(tmp) / "project", n, dim, n_classes)
        build_s = time.perf_counter() - started
        project = Project.open(Path(tmp) / "project")
        try:
            with TestClient(create_app(project, user="bench")) as client:
                def get(url, **params):
                    r = client.get(url, params=params)
                    r.raise_for_status()
                    return r.json()

                row = {"n_objects": n, "feature_dim": dim, "classes": n_classes, "build_s": round(build_s, 1)}
                row["grid_page_ms"] = _median_ms(lambda: get("/api/objects", label="class_000", per_page=PAGE), 5)
                row["grid_page_uncertain_ms"] = _median_ms(
                    lambda: get("/api/objects", label="class_000", sort="uncertainty", per_page=PAGE), 5)
                row["project_counts_ms"] = _median_ms(lambda: get("/api/project"), 3)
                decision_times = []
                for c in range(n_validated_classes):
                    ids = [o["id"] for o in get("/api/objects", label=f"class_{c:03d}", per_page=per_class)["objects"]]
                    started = time.perf_counter()
                    client.post("/api/decisions", json={"ids": ids, "action": "validate"}).raise_for_status()
                    decision_times.append(time.perf_counter() - started)
                row["decision_ms"] = round(1000 * statistics.median(decision_times), 1)
                started = time.perf_counter()
                retrained = client.post("/api/retrain")
                retrained.raise_for_status()
                row["retrain_s"] = round(time.perf_counter() - started, 2)
                row["retrain_validated"] = retrained.json()["n_validated"]
                row["dashboard_ms"] = _median_ms(lambda: get("/api/dashboard"), 3)
                started = time.perf_counter()
                get("/api/next", n=PAGE)
                row["next_first_s"] = round(time.perf_counter() - started, 2)  # makes the embedding once
                row["next_ms"] = _median_ms(lambda: get("/api/next", n=PAGE), 3)
        finally:
            project.close()
    print(row, flush=True)
    return row


def timing_table(rows: list[dict]) -> list[str]:
    table = ["Synthetic projects (features: a Gaussian around each predicted class's centre; random "
             "probabilities; SQLite store); the server through FastAPI's "
             f"test client, medians. Retrain: {rows[0]['retrain_validated']} validated images of 20 classes, then "
             "every object re-predicted and stored; next to look at: 100 images.", "",
             "| objects | features | grid page | least-confident page | class counts | 20-image decision | retrain | "
             "dashboard | next to look at (first: embedding) |",
             "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['n_objects']:,} | {r['feature_dim']} | {r['grid_page_ms']} ms | {r['grid_page_uncertain_ms']} ms "
              f"| {r['project_counts_ms']} ms | {r['decision_ms']} ms | {r['retrain_s']} s | {r['dashboard_ms']} ms | "
              f"{r['next_ms']} ms ({r['next_first_s']} s) |" for r in rows]
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", help=".npz with features (N, D), labels (N,), optionally probs (N, C), classes")
    ap.add_argument("--name", help="results name: annotation_NAME (default: the features file's stem, or timing)")
    ap.add_argument("--retrain-every", type=int, default=RETRAIN_EVERY, help="active learning: pages per retrain")
    ap.add_argument("--targets", type=float, nargs="+", default=list(REPORTED),
                    help="shares of the images (default: 0.6 0.7 0.8 0.9)")
    ap.add_argument("--bundle", help="the bundle whose head inputs the features are: the retrain may read its head's "
                                     "hidden layer, as the app's does (without it: the features)")
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", action="store_true",
                    help="keep the other strategies' results of an earlier run of the same file (same images, "
                         "model and settings) and replace only those run now")
    ap.add_argument("--timing", action="store_true", help="measure the server's response times instead")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25_000, 250_000], help="--timing: objects")
    ap.add_argument("--dim", type=int, default=512, help="--timing: feature size")
    ap.add_argument("--classes", type=int, default=121, help="--timing: classes")
    a = ap.parse_args()
    from _common import RESULTS, write  # noqa: PLC0415 - the table and timing functions import without them

    if a.timing:
        rows = [timing(n, dim=a.dim, n_classes=a.classes) for n in a.sizes]
        write(f"annotation_{a.name or 'timing'}", {"timing": rows}, timing_table(rows))
        return
    if not a.features:
        ap.error("pass --features FILE.npz (or --timing)")
    with np.load(a.features, allow_pickle=False) as f:
        features, labels = np.asarray(f["features"], np.float32), f["labels"]
        probs = f["probs"] if "probs" in f else None
        classes = [str(c) for c in f["classes"]] if "classes" in f else None
        info = json.loads(str(f["info"])) if "info" in f else None
    source = None
    if a.bundle:
        from diffprobe.probe.bundle import ClassifierBundle  # noqa: PLC0415

        source = ClassifierBundle.load_head(a.bundle)[1]
    result = simulate(features, labels, probs, classes, targets=tuple(sorted(a.targets)),
                      retrain_every=a.retrain_every, strategies=tuple(a.strategies), source=source, seed=a.seed)
    name = a.name or Path(a.features).stem
    payload = {"features": str(a.features), **({"features_info": info} if info else {}),
               **({"bundle": str(a.bundle)} if a.bundle else {}), **result}
    if a.merge:
        payload = merged(RESULTS / f"annotation_{name}.json", payload)
    write(f"annotation_{name}", payload, annotation_table(payload, Path(payload["features"]).name))


if __name__ == "__main__":
    main()

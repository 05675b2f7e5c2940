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

Start: nothing validated. One **decision** is one click or keystroke on one image, or one action on a selected
group (validate a page, name a cluster, split, grow). The annotator never errs. Strategies, each stopped when
the highest target is reached:

- ``one_at_a_time``: images in random order, each given its label (one decision per image).
- ``confidence_pages``: the grid of each predicted class, most confident first, 100 to a page; pages with the
  highest mean probability first. On a page the wrong predictions are moved to their class one by one, then the
  rest validated at once.
- ``cluster_grow`` (MorphoCluster's workflow): k-means clusters of about 200 unvalidated images in the app's
  embedding; per cluster, largest first: when its main class is under 80% of it, split it (k = 2, at most 3
  deep) and review the halves; otherwise move the odd images out one by one and name the cluster; then grow it by 50 nearest
  neighbours at a time, reviewed alike, until a growth is mostly of other classes (left unvalidated, one wasted
  Grow). Then re-cluster the rest.
- ``active_learning``: pages of 100 unvalidated images from ``next_to_look``'s choice (uncertain by margin,
  diverse by k-means), reviewed as a confidence page; the head retrained on the validated labels every
  ``--retrain-every`` pages, as the Retrain button does it (``app.learn.retrain``): ``fit_and_predict`` (reading
  the bundle's hidden layer or its features, whichever cross-validates better, when ``--bundle`` names the
  bundle whose head inputs the features are), and the images the model puts in a class the new head did not
  learn keep the model's prediction. Each retrain's wall time is recorded.

Reported per strategy and target (``--targets``, default 60/70/80/90% of the images): decisions until that share
of the images is validated (correctly: the annotator is perfect), and, with a model, decisions until that share
is **labelled right**, counting the prediction each image not yet validated carries at that moment (also for
``one_at_a_time``: in the app the images not yet looked at show the model's predictions), and the images per
decision there (share x N / decisions). Writes ``benchmarks/results/annotation_<name>.json`` and ``.md``. The clustering, splitting, growing, the choice of the
next images and the retrain are the app's own functions (``diffprobe.app.learn``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from diffprobe.app import learn
from diffprobe.app.project import Project, uncertainty
from diffprobe.app.simulate import synthetic_project
from diffprobe.utils import DiffprobeError

TARGETS = (0.6, 0.7, 0.8)  # simulate()'s default
REPORTED = (0.6, 0.7, 0.8, 0.9)  # the command line's default (--targets)
GOAL = (0.9, 4.0)  # issue 42: 90% of the images labelled right at >= 4 images per decision
PAGE = 100            # the app's grid page (app.js PER_PAGE)
CLUSTER_SIZE = 200    # cluster_grow: k = unvalidated images / this
GROW = 50             # cluster_grow: images added per Grow
MAX_SPLITS = 3        # cluster_grow: a cluster is split at most this deep
PURE = 0.8            # cluster_grow: a cluster whose main class is a smaller share than this is split
RETRAIN_EVERY = 5     # active_learning: pages between retrains (--retrain-every)
STRATEGIES = ("one_at_a_time", "confidence_pages", "cluster_grow", "active_learning")


class Annotation:
    """One simulated session: what is validated, how many decisions it took, when each target was reached."""

    def __init__(self, truth: np.ndarray, targets: tuple[float, ...], predicted: np.ndarray | None = None):
        self.truth = truth
        self.n = len(truth)
        self.targets = targets
        self.validated = np.zeros(self.n, bool)
        self.decisions = 0
        self.reached = dict.fromkeys(targets)
        # With a model, the images not yet validated carry its prediction: also when that labelling reaches a target.
        self.reached_with_predictions = dict.fromkeys(targets) if predicted is not None else None
        self.set_predictions(predicted)

    def set_predictions(self, predicted: np.ndarray | None) -> None:
        self.predicted = predicted
        if predicted is not None:
            self.right_unvalidated = int(((predicted == self.truth) & ~self.validated).sum())
            self._check()

    def decide(self, ids=()) -> None:
        """One decision, validating ``ids`` (none for an action such as split or grow)."""
        ids = np.asarray(ids, np.int64)
        new = ids[~self.validated[ids]]
        self.decisions += 1
        if self.predicted is not None:
            self.right_unvalidated -= int((self.predicted[new] == self.truth[new]).sum())
        self.validated[new] = True
        self._check()

    def review(self, ids: np.ndarray, shown: np.ndarray) -> None:
        """A group seen each under a label (``shown``, per id): the wrong ones moved to their class one by one,
        then the rest validated in one action."""
        keep = ~self.validated[ids]
        ids, shown = ids[keep], shown[keep]
        right = self.truth[ids] == shown
        for i in ids[~right]:
            self.decide([i])
        if right.any():
            self.decide(ids[right])

    def _check(self) -> None:
        done = int(self.validated.sum())
        for t in self.targets:
            if self.reached[t] is None and done >= t * self.n:
                self.reached[t] = self.decisions
            if (self.reached_with_predictions is not None and self.reached_with_predictions[t] is None
                    and done + self.right_unvalidated >= t * self.n):
                self.reached_with_predictions[t] = self.decisions

    @property
    def finished(self) -> bool:
        return self.reached[max(self.targets)] is not None

    def unvalidated(self) -> np.ndarray:
        return np.flatnonzero(~self.validated)


# ---- the strategies -------------------------------------------------------------------------------------------------
def one_at_a_time(truth: np.ndarray, targets: tuple[float, ...], predicted: np.ndarray | None = None, *,
                  seed: int = 0) -> Annotation:
    s = Annotation(truth, targets, predicted)
    for i in np.random.default_rng(seed).permutation(len(truth)):
        s.decide([i])
        if s.finished:
            break
    return s


def confidence_pages(truth: np.ndarray, targets: tuple[float, ...], predicted: np.ndarray,
                     probability: np.ndarray) -> Annotation:
    s = Annotation(truth, targets, predicted)
    pages = []
    for c in np.unique(predicted):
        members = np.flatnonzero(predicted == c)
        members = members[np.argsort(-probability[members], kind="stable")]
        pages += [members[k : k + PAGE] for k in range(0, len(members), PAGE)]
    for page in sorted(pages, key=lambda p: -probability[p].mean()):
        s.review(page, predicted[page])
        if s.finished:
            break
    return s


def _name_and_grow(s: Annotation, x: np.ndarray, ids: np.ndarray, depth: int, seed: int) -> None:
    ids = ids[~s.validated[ids]]
    if not len(ids):
        return
    counts = np.bincount(s.truth[ids])
    main = int(counts.argmax())
    if counts[main] < PURE * len(ids) and len(ids) >= 4 and depth < MAX_SPLITS:
        s.decide()  # Split
        for half in learn.split_members(x[ids], seed=seed):
            _name_and_grow(s, x, ids[half], depth + 1, seed)
            if s.finished:
                return
        return
    s.review(ids, np.full(len(ids), main))  # odd ones moved out, then Name cluster
    members = ids
    while not s.finished:
        outside = s.unvalidated()
        if not len(outside):
            return
        s.decide()  # Grow
        added = outside[learn.nearest_to(x[outside], x[members].mean(0), GROW)]
        if (s.truth[added] == main).mean() < 0.5:
            return  # mostly other classes: the cluster is exhausted; they stay unvalidated for the next clustering
        s.review(added, np.full(len(added), main))
        members = np.r_[members, added]


def cluster_grow(truth: np.ndarray, targets: tuple[float, ...], x: np.ndarray, predicted: np.ndarray, *,
                 seed: int = 0) -> Annotation:
    s = Annotation(truth, targets, predicted)
    while not s.finished:
        rest = s.unvalidated()
        if len(rest) < 2:
            s.decide(rest)
            break
        k = int(np.clip(len(rest) // CLUSTER_SIZE, 2, 200))
        for group in learn.kmeans_groups(x[rest], k, seed=seed):
            _name_and_grow(s, x, rest[group], 0, seed)
            if s.finished:
                break
    return s


def retrain(features: np.ndarray, done: np.ndarray, labels: list[str], names: list[str], model_predicted: np.ndarray,
            model_margin: np.ndarray, *, source=None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """What the app's Retrain button does (``app.learn.retrain``, on arrays): the head fitted on the validated
    images (``fit_and_predict``, reading ``source``'s hidden layer or the features), every image re-predicted,
    except those the model puts in a class the head did not learn, which keep the model's prediction.
    Returns the predicted class indices, their margins, and how many images kept the model's prediction."""
    fit = learn.fit_and_predict(features, done, labels, names, source=source, seed=seed)
    learned = np.asarray([names.index(c) for c in fit.classes])
    keep = ~np.isin(model_predicted, learned)
    return (np.where(keep, model_predicted, learned[fit.best]), np.where(keep, model_margin, fit.margin),
            int(keep.sum()))


def active_learning(truth: np.ndarray, targets: tuple[float, ...], features: np.ndarray, x: np.ndarray,
                    predicted: np.ndarray, margin: np.ndarray, names: list[str], *, retrain_every: int,
                    source=None, seed: int = 0) -> tuple[Annotation, list[dict]]:
    """The session, and one {n_validated, seconds, kept} per retrain (its wall time)."""
    s = Annotation(truth, targets, predicted)
    model_predicted, model_margin = predicted, margin
    pages, retrains = 0, []
    while not s.finished:
        rest = s.unvalidated()
        page = rest[learn.diverse_uncertain(1 - margin[rest], x[rest], PAGE, seed=seed)]
        s.review(page, predicted[page])
        pages += 1
        if pages % retrain_every or s.finished:
            continue
        done = np.flatnonzero(s.validated)
        started = time.perf_counter()
        try:
            predicted, margin, kept = retrain(features, done, [names[t] for t in truth[done]], names, model_predicted,
                                              model_margin, source=source, seed=seed)
        except DiffprobeError:  # fewer than 2 classes with 2 validated images yet
            continue
        retrains.append({"n_validated": len(done), "seconds": round(time.perf_counter() - started, 2), "kept": kept})
        print("retrain", retrains[-1], flush=True)
        s.set_predictions(predicted)
    return s, retrains


def simulate(features: np.ndarray, labels: np.ndarray, probs: np.ndarray | None = None,
             classes: list[str] | None = None, *, targets: tuple[float, ...] = TARGETS,
             retrain_every: int = RETRAIN_EVERY, strategies: tuple[str, ...] = STRATEGIES, source=None,
             seed: int = 0) -> dict:
    """Every strategy on one labelled features set: {n, n_classes, model, strategies: {name: {decisions: {target:
    n}, decisions_with_predictions, images_per_decision, seconds, ...}}}. ``source``: the head of the bundle whose
    head inputs ``features`` are (the retrain may read its hidden layer, as the app's does), or None."""
    labels = np.asarray(labels, np.int64)
    names = list(classes) if classes is not None else [f"class_{k}" for k in range(labels.max() + 1)]
    started = time.perf_counter()
    if probs is None:  # the app's head on every true label, each image predicted by a model that did not see it
        fit = learn.fit_and_predict(features, np.arange(len(labels)), [names[t] for t in labels], names, seed=seed)
        predicted = np.asarray([names.index(c) for c in fit.classes])[fit.best]
        probability, margin, model = fit.probability, fit.margin, "cross-validated app head (no probs given)"
    else:
        probs = np.asarray(probs, np.float64)
        predicted, probability, model = probs.argmax(1), probs.max(1), "the file's probs"
        margin = uncertainty(probs)[0]
    model_seconds = time.perf_counter() - started
    x = learn.embed(features, seed=seed)
    out = {}
    for name in strategies:
        started, extra = time.perf_counter(), {}
        if name == "one_at_a_time":
            s = one_at_a_time(labels, targets, predicted, seed=seed)
        elif name == "confidence_pages":
            s = confidence_pages(labels, targets, predicted, probability)
        elif name == "cluster_grow":
            s = cluster_grow(labels, targets, x, predicted, seed=seed)
        elif name == "active_learning":
            s, runs = active_learning(labels, targets, features, x, predicted, margin, names,
                                      retrain_every=retrain_every, source=source, seed=seed)
            seconds = [r["seconds"] for r in runs]
            extra = {"retrains": len(runs), "retrain_seconds_total": round(sum(seconds), 2),
                     "retrain_seconds_mean": round(sum(seconds) / len(seconds), 2) if seconds else None,
                     "retrain_seconds_max": max(seconds) if seconds else None, "retrain_runs": runs}
        else:
            raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
        right = s.reached_with_predictions
        out[name] = {"decisions": {str(t): s.reached[t] for t in targets},
                     "decisions_with_predictions": ({str(t): right[t] for t in targets} if right is not None else None),
                     # images labelled right per decision when that share is reached (the model's predictions
                     # counted; without a model, the validated images); None: right before any decision
                     "images_per_decision": {str(t): (round(t * len(labels) / d, 1) if d else None)
                                             for t, d in (right or s.reached).items()},
                     "validated_at_end": int(s.validated.sum()), "seconds": round(time.perf_counter() - started, 2),
                     **extra}
        print(name, out[name], flush=True)
    goal_share, goal_rate = GOAL
    goal = {name: _meets(r, goal_share, goal_rate, len(labels)) for name, r in out.items()} if goal_share in targets \
        else None
    return {"n": len(labels), "n_classes": int(len(np.unique(labels))), "model": model,
            "model_accuracy": round(float((predicted == labels).mean()), 4),
            "model_seconds": round(model_seconds, 2), "targets": list(targets), "page": PAGE,
            "cluster_size": CLUSTER_SIZE, "grow": GROW, "retrain_every": retrain_every,
            "retrain_reads": "the bundle's head (hidden layer or features)" if source is not None else "the features",
            "goal": {"share": goal_share, "images_per_decision": goal_rate, "met": goal}, "strategies": out}


def _meets(r: dict, share: float, rate: float, n: int) -> bool:
    """Whether a strategy labelled ``share`` of the images right at ``rate`` or more images per decision."""
    d = (r["decisions_with_predictions"] or r["decisions"])[str(share)]
    return d is not None and (d == 0 or share * n / d >= rate)


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
    from _common import RESULTS, write  # noqa: PLC0415 - the simulation functions import without the benchmark helpers

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


def merged(path: Path, new: dict) -> dict:
    """``new``'s strategies added to (or replacing theirs in) the earlier results at ``path``, in STRATEGIES order;
    refused unless both are of the same images, model and settings."""
    old = json.loads(path.read_text())
    same = ("n", "n_classes", "model", "model_accuracy", "targets", "page", "cluster_size", "grow", "retrain_every",
            "retrain_reads")
    differ = [k for k in same if old.get(k) != new.get(k)]
    if differ:
        raise SystemExit(f"{path}: not the same run ({', '.join(differ)} differ); run every strategy instead")
    strategies = {**old["strategies"], **new["strategies"]}
    goal = old.get("goal")
    if goal and goal.get("met") is not None and new.get("goal", {}).get("met") is not None:
        goal = {**goal, "met": {**goal["met"], **new["goal"]["met"]}}
    return {**old, **({"goal": goal} if goal else {}),
            "strategies": {k: strategies[k] for k in STRATEGIES if k in strategies}}


if __name__ == "__main__":
    main()

"""A simulated annotator who knows the true labels, working through a labelled features set with the app's own
functions (``diffprobe.app.learn``): how many decisions does a person need to label a collection with the app?
``benchmarks/annotation.py`` runs it on a features file and writes the results; ``tests/app/test_annotator.py``
runs it on a few hundred made-up points.

Start: nothing validated. One **decision** is one click or keystroke on one image, or one action on a selected
group (validate a page, name a cluster, split, grow). The annotator never errs. Strategies, each stopped when
the highest target is reached:

- ``one_at_a_time``: images in random order, each given its label (one decision per image).
- ``confidence_pages``: the grid of each predicted class, most confident first, 100 to a page; pages with the
  highest mean probability first. On a page the wrong predictions are moved to their class one by one, then the
  rest validated at once.
- ``cluster_grow`` (MorphoCluster's workflow): k-means clusters of about 200 unvalidated images in the app's
  embedding; per cluster, largest first: when its main class is under 80% of it, split it (k = 2, at most 3
  deep) and review the halves; otherwise move the odd images out one by one and name the cluster; then grow it
  by 50 nearest neighbours at a time, reviewed alike, until a growth is mostly of other classes (left
  unvalidated, one wasted Grow). Then re-cluster the rest.
- ``active_learning``: pages of 100 unvalidated images from ``next_to_look``'s choice (uncertain by margin,
  diverse by k-means), reviewed as a confidence page; the head retrained on the validated labels every
  ``retrain_every`` pages, as the Retrain button does it (``app.learn.retrain``): ``fit_and_predict`` (reading
  the bundle's hidden layer or its features, whichever cross-validates better, when ``source`` is the head of
  the bundle whose head inputs the features are), and the images the model puts in a class the new head did not
  learn keep the model's prediction. Each retrain's wall time is recorded.

Without probabilities of a model, the app's own head (``app.learn.fit_and_predict``) fitted on every true label
stands in for the bundle: each image gets its cross-validated prediction, from a model that did not see it.

Reported per strategy and target (default 60/70/80% of the images): decisions until that share of the images is
validated (correctly: the annotator is perfect), and, with a model, decisions until that share is **labelled
right**, counting the prediction each image not yet validated carries at that moment (also for
``one_at_a_time``: in the app the images not yet looked at show the model's predictions), and the images per
decision there (share x N / decisions). ``merged`` adds the strategies of one run to the results of an earlier
run of the same images and settings (``benchmarks/annotation.py --merge``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..utils import DiffprobeError
from . import learn
from .project import uncertainty

TARGETS = (0.6, 0.7, 0.8)  # simulate()'s default
GOAL = (0.9, 4.0)  # issue 42: 90% of the images labelled right at >= 4 images per decision
PAGE = 100            # the app's grid page (app.js PER_PAGE)
CLUSTER_SIZE = 200    # cluster_grow: k = unvalidated images / this
GROW = 50             # cluster_grow: images added per Grow
MAX_SPLITS = 3        # cluster_grow: a cluster is split at most this deep
PURE = 0.8            # cluster_grow: a cluster whose main class is a smaller share than this is split
RETRAIN_EVERY = 5     # active_learning: pages between retrains (benchmarks/annotation.py --retrain-every)
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

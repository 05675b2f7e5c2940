"""Learning from the decisions, on the cached features only (no image is read again, no backbone runs).

``retrain``: a new head (the logistic regression of ``probe.readout``, as few-shot adaptation's, on the project
bundle's hidden layer or its features, as ``adapt`` chooses) on every validated label, then every object
re-predicted; objects still ``predicted`` follow the new head, except those the bundle's model puts in a class
the head did not learn (they keep the model's prediction); ``back_to_model`` undoes it.
``cluster``: k-means (or HDBSCAN) on the uncertain objects, each cluster
ordered by distance to its centre, so a person can name a whole group at once; ``split_cluster`` and
``grow_cluster`` refine one (MorphoCluster's workflow). ``next_to_look``: the unvalidated
objects whose label would teach the head most (uncertain) without showing ten of the same (diverse).
``neighbours``: the objects nearest one, for the enlarged view.

The array functions (``embed``, ``fit_and_predict``, ``kmeans_groups``, ``split_members``, ``nearest_to``,
``diverse_uncertain``) hold the logic; the project functions feed them from the store and the project's files.
The simulated annotator (``app.annotator``, run by ``benchmarks/annotation.py``) calls the same array functions,
so it measures the app's workflow.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from ..probe import ClassifierBundle, LinearHead, MLPHead, fit_readout, fit_temperature
from ..utils import DiffprobeError, write_json
from ..workflows.config import AdaptConfig
from .project import (EMBEDDING_FILE, LAST_RETRAIN_FILE, Project, model_predictions, save_uncertainty, uncertainty,
                      uncertainty_of)

CHUNK = 8192  # objects re-predicted at a time, so a 100,000-object project never holds all logits twice
EMBEDDING_DIMS = 32  # clusters and neighbours live in this many principal components: fast, and distances mean
# more there than in thousands of raw feature dimensions
EMBEDDING_FIT = 20_000  # the PCA is fitted on at most this many objects (a random subset), then applied to all
MEASURES = ("margin", "entropy", "probability")
CLUSTER_METHODS = ("kmeans", "hdbscan")
TOP_TRANSITIONS = 10


# ---- array functions (shared with app.annotator) ----------------------------------------------------------------
def embed(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N, D) features -> (N, 32) float32: standardised, then principal components fitted on a random subset."""
    n, d = features.shape
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, min(n, EMBEDDING_FIT), replace=False))
    sample = np.asarray(features[fit_rows], np.float32)
    scaler = StandardScaler().fit(sample)
    dims = min(EMBEDDING_DIMS, len(sample), d)
    pca = PCA(n_components=dims, random_state=seed).fit(scaler.transform(sample))
    out = np.empty((n, dims), np.float32)
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = pca.transform(scaler.transform(np.asarray(features[start : start + CHUNK],
                                                                               np.float32)))
    return out


@dataclass
class Fit:
    """A head fitted on validated objects and its predictions for all objects."""

    classes: list[str]       # the classes the head knows (those with 2 or more validated objects)
    best: np.ndarray         # (N,) index into classes of each object's prediction
    probability: np.ndarray  # (N,) its probability
    margin: np.ndarray       # (N,) top minus second probability
    entropy: np.ndarray      # (N,) entropy of the probabilities, in nats
    n_fitted: int
    left_out: list[str]
    c: float
    temperature: float
    cross_validated_accuracy: float
    readout: str             # what the head read: "hidden" (the source head's hidden layer) or "features"


def fit_and_predict(features: np.ndarray, ids: np.ndarray, labels: list[str], class_order: list[str], *,
                    source: LinearHead | MLPHead | None = None, readout: str = AdaptConfig.readout,
                    seed: int = AdaptConfig.seed) -> Fit:
    """Fit the head on the objects ``ids`` labelled ``labels``; predict all of ``features``. Classes with fewer
    than 2 examples are left out. The objects fitted on get their cross-validated prediction (from a model that
    did not see them), so precision measured on them stays honest after a retrain. ``source`` (the head of the
    bundle that made ``features``, or None) and ``readout``: as ``probe.readout.fit_readout``."""
    counts = Counter(labels)
    classes = [c for c in class_order if counts.get(c, 0) >= 2]
    left_out = sorted(c for c, n in counts.items() if n < 2)
    if len(classes) < 2:
        raise DiffprobeError(f"retraining needs at least 2 classes with 2 validated images each; validated so far: "
                             f"{dict(counts) or 'none'}")
    keep = [k for k, lab in enumerate(labels) if lab in classes]
    fitted = np.asarray(ids)[keep]
    x = np.asarray(features[fitted], np.float32)
    y = np.asarray([classes.index(labels[k]) for k in keep])
    head, cv_logits, c, used = fit_readout(source, x, y, readout=readout, seed=seed)
    temperature = fit_temperature(cv_logits, y)
    n = len(features)
    best, prob = np.empty(n, np.int64), np.empty(n, np.float64)
    margin, entropy = np.empty(n, np.float32), np.empty(n, np.float32)

    def put(rows, p):
        best[rows], prob[rows] = p.argmax(1), p.max(1)
        margin[rows], entropy[rows] = uncertainty(p)

    for start in range(0, n, CHUNK):
        put(slice(start, start + CHUNK),
            softmax(head.logits(np.asarray(features[start : start + CHUNK], np.float32)) / temperature, axis=1))
    put(fitted, softmax(cv_logits / temperature, axis=1))
    return Fit(classes, best, prob, margin, entropy, len(keep), left_out, c, temperature,
               float((cv_logits.argmax(1) == y).mean()), used)


def _by_distance(x: np.ndarray, members: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return members[np.argsort(np.linalg.norm(x[members] - centre, axis=1), kind="stable")]


def kmeans_groups(x: np.ndarray, k: int, *, seed: int = 0) -> list[np.ndarray]:
    """k-means of the rows of ``x``: k arrays of row indices, each nearest its centre first, largest first."""
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    groups = [_by_distance(x, np.flatnonzero(km.labels_ == c), km.cluster_centers_[c]) for c in range(k)]
    return sorted((g for g in groups if len(g)), key=lambda g: -len(g))


def hdbscan_groups(x: np.ndarray, min_cluster_size: int) -> list[np.ndarray]:
    """HDBSCAN of the rows of ``x`` (as many clusters as the density gives; noise left out), as kmeans_groups."""
    found = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit(x).labels_
    groups = [np.flatnonzero(found == c) for c in range(found.max() + 1)]
    groups = [_by_distance(x, g, x[g].mean(0)) for g in groups]
    return sorted(groups, key=lambda g: -len(g))


def split_members(x: np.ndarray, *, seed: int = 0) -> list[np.ndarray]:
    """k-means with k = 2 inside one group (rows of ``x``): two arrays of row indices, larger first."""
    if len(x) < 2:
        raise DiffprobeError("a cluster of fewer than 2 images cannot be split")
    return kmeans_groups(x, 2, seed=seed)


def nearest_to(x: np.ndarray, centre: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` rows of ``x`` nearest ``centre``, nearest first."""
    n = min(n, len(x))
    if n == 0:
        return np.zeros(0, np.int64)
    return NearestNeighbors(n_neighbors=n).fit(x).kneighbors(centre[None], return_distance=False)[0]


def diverse_uncertain(uncertain: np.ndarray, x: np.ndarray, n: int, *, pool: int = 5, seed: int = 0) -> np.ndarray:
    """Pick ``n`` of the rows (``uncertain``: larger = less sure): the ``pool * n`` most uncertain are grouped by
    k-means into ``n`` clusters on ``x`` and the most uncertain of each is taken, so near-duplicates do not fill a
    page. Returned most uncertain first."""
    n = min(n, len(uncertain))
    if n == 0:
        return np.zeros(0, np.int64)
    candidates = np.argsort(-uncertain, kind="stable")[: pool * n]
    if len(candidates) <= n:
        return candidates
    found = KMeans(n_clusters=n, n_init=1, random_state=seed).fit(x[candidates]).labels_
    picked = [candidates[found == c][0] for c in range(n) if (found == c).any()]  # candidates: most uncertain first
    return np.asarray(sorted(picked, key=lambda i: -uncertain[i]), np.int64)


def uncertain_score(measure: str, *, margin: np.ndarray | None, entropy: np.ndarray | None,
                    probability: np.ndarray) -> np.ndarray:
    """The larger, the less sure: 1 - margin, entropy, or 1 - top probability."""
    if measure not in MEASURES:
        raise DiffprobeError(f"unknown uncertainty measure {measure!r}; choose one of {', '.join(MEASURES)}")
    if measure == "probability":
        return 1 - np.asarray(probability, np.float64)
    if margin is None or entropy is None:
        raise DiffprobeError(f"this project has no stored {measure} (made before it was kept); retrain once, or use "
                             f"measure=probability")
    return 1 - np.asarray(margin, np.float64) if measure == "margin" else np.asarray(entropy, np.float64)


# ---- on a project -------------------------------------------------------------------------------------------------
def embedding(project: Project) -> np.ndarray:
    """The project's (N, 32) embedding for clusters and neighbours, computed once and kept in the project."""
    path = project.root / EMBEDDING_FILE
    if not path.is_file():
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, embed(project.features()))
        os.replace(tmp, path)
    return np.load(path)


def source_head(project: Project) -> LinearHead | MLPHead | None:
    """The head of the project's bundle (whose hidden layer a retrain may read), or None when the project's
    ``model`` is no bundle folder (a project made from features alone, as the benchmarks make)."""
    model = Path(project.info["model"])
    return ClassifierBundle.load_head(model)[1] if (model / "bundle.json").is_file() else None


def retrain(project: Project, *, user: str, seed: int = AdaptConfig.seed, apply: bool = True) -> dict:
    """Refit the head on the validated objects; re-predict all objects. Classes with fewer than 2 validated
    objects are left out of the fit (named in ``left_out``), and every object the bundle's own model predicts as
    one of them keeps that prediction: a head that never saw a class must not take its images away. ``effect``:
    right answers on the validated images, each predicted without having been fitted on (its cross-validated
    prediction, or the head's for a left-out class), by the model's own predictions and by the retrained ones
    (``worse`` when fewer). Returns that, how many predictions of unvalidated objects moved class, the most
    frequent moves (``transitions``, from -> to), and what the head read (``readout``: the bundle's hidden layer or
    its features, as ``diffprobe adapt`` chooses). ``apply=False``: all that, and nothing changed (a preview).
    ``back_to_model`` undoes it."""
    started = time.perf_counter()
    ids, labels = project.store.validated()
    model = model_predictions(project)
    class_order = project.store.classes()
    fit = fit_and_predict(project.features(), np.asarray(ids, np.int64), labels, class_order,
                          source=source_head(project), seed=seed)
    keep = ~np.isin(model["label"], fit.classes)
    new_labels = np.where(keep, model["label"], np.asarray(fit.classes, dtype=str)[fit.best])
    if apply:
        transitions = _store_predictions(
            project, new_labels, np.where(keep, model["probability"], fit.probability),
            np.where(keep, model["margin"], fit.margin), np.where(keep, model["entropy"], fit.entropy),
            user=user, classes=fit.classes, n_validated=fit.n_fitted, kind="retrain")
    else:
        transitions = _summary(_moves([(o["id"], o["label"], new_labels[o["id"]]) for o in project.store.all_objects()
                                       if o["status"] == "predicted" and o["label"] != new_labels[o["id"]]]))
    truth = np.asarray(labels, dtype=str)
    model_right = int((model["label"][ids] == truth).sum())
    retrain_right = int((new_labels[ids] == truth).sum())
    return {"n_validated": fit.n_fitted, "classes": fit.classes,
            "left_out": [c for c in class_order if c not in fit.classes], "n_kept": int(keep.sum()),
            "readout": fit.readout, "C": fit.c, "temperature": round(fit.temperature, 4),
            "cross_validated_accuracy": round(fit.cross_validated_accuracy, 4),
            "effect": {"n": len(ids), "model_right": model_right, "retrain_right": retrain_right,
                       "worse": retrain_right < model_right},
            **transitions, "applied": apply, "seconds": round(time.perf_counter() - started, 2)}


def back_to_model(project: Project, *, user: str) -> dict:
    """Undo every retrain: the bundle's own predictions again for all objects (validated and dubious ones keep
    their label). Returns how many predictions of unvalidated objects moved class, and the most frequent moves."""
    started = time.perf_counter()
    model = model_predictions(project)
    transitions = _store_predictions(project, model["label"], model["probability"], model["margin"],
                                     model["entropy"], user=user, classes=project.info["classes"], n_validated=0,
                                     kind="model")
    return {**transitions, "seconds": round(time.perf_counter() - started, 2)}


def _store_predictions(project: Project, labels: np.ndarray, probability: np.ndarray, margin: np.ndarray,
                       entropy: np.ndarray, **record) -> dict:
    """New predictions into the store and the project's files; returns {n_changed, transitions (the top ones)}."""
    changes = project.store.set_predictions(list(range(len(labels))), labels.tolist(), probability.tolist(), **record)
    save_uncertainty(project.root, margin, entropy)
    transitions = _moves(changes)
    write_json(project.root / LAST_RETRAIN_FILE, {"n_changed": len(changes), "transitions": transitions})
    return _summary(transitions)


def _moves(changes: list[tuple[int, str, str]]) -> list[dict]:
    """(id, label before, label after) -> [{from, to, n, ids}], the most frequent move first."""
    moved: dict[tuple[str, str], list[int]] = {}
    for object_id, before, after in changes:
        moved.setdefault((before, after), []).append(object_id)
    return [{"from": a, "to": b, "n": len(ids), "ids": ids}
            for (a, b), ids in sorted(moved.items(), key=lambda kv: -len(kv[1]))]


def _summary(transitions: list[dict]) -> dict:
    return {"n_changed": sum(t["n"] for t in transitions),
            "transitions": [{k: t[k] for k in ("from", "to", "n")} for t in transitions[:TOP_TRANSITIONS]]}


def cluster(project: Project, *, k: int = 8, max_probability: float = 0.8, method: str = "kmeans",
            min_cluster_size: int = 5, seed: int = 0) -> dict:
    """k-means (``k`` clusters) or HDBSCAN (clusters of ``min_cluster_size`` or more; the rest is noise) of the
    objects still ``predicted`` with probability below ``max_probability``, in the project's embedding. Returns
    {method, k, max_probability, n_objects, n_noise, clusters: [{cluster, size, ids (nearest the centre first),
    grown: []}]}."""
    if method not in CLUSTER_METHODS:
        raise DiffprobeError(f"unknown clustering method {method!r}; choose one of {', '.join(CLUSTER_METHODS)}")
    if k < 2:
        raise DiffprobeError(f"k must be at least 2, got {k}")
    if not 0 < max_probability <= 1:
        raise DiffprobeError(f"max_probability must be in (0, 1], got {max_probability}")
    ids = np.asarray(project.store.uncertain_ids(max_probability), np.int64)
    needed = k if method == "kmeans" else 2 * min_cluster_size
    if len(ids) < needed:
        raise DiffprobeError(f"only {len(ids)} unvalidated objects below probability {max_probability}; raise "
                             f"max_probability or ask for smaller or fewer clusters")
    x = embedding(project)[ids]
    groups = kmeans_groups(x, k, seed=seed) if method == "kmeans" else hdbscan_groups(x, min_cluster_size)
    clusters = [{"cluster": c, "size": len(g), "ids": ids[g].tolist(), "grown": []} for c, g in enumerate(groups)]
    return {"method": method, "k": len(clusters), "max_probability": max_probability, "n_objects": len(ids),
            "n_noise": len(ids) - sum(len(g) for g in groups), "clusters": clusters}


def _find(result: dict, number: int) -> dict:
    found = [c for c in result["clusters"] if c["cluster"] == number]
    if not found:
        raise KeyError(number)
    return found[0]


def split_cluster(project: Project, result: dict, number: int, *, seed: int = 0) -> list[int]:
    """Replace cluster ``number`` of ``result`` by its two k-means halves (new numbers, returned)."""
    old = _find(result, number)
    ids = np.asarray(old["ids"], np.int64)
    halves = split_members(embedding(project)[ids], seed=seed)
    first = max(c["cluster"] for c in result["clusters"]) + 1
    new = [{"cluster": first + h, "size": len(g), "ids": ids[g].tolist(), "grown": []} for h, g in enumerate(halves)]
    at = result["clusters"].index(old)
    result["clusters"][at : at + 1] = new
    return [c["cluster"] for c in new]


def grow_cluster(project: Project, result: dict, number: int, n: int) -> list[int]:
    """Add to cluster ``number`` the ``n`` unvalidated objects outside it nearest its centre (taken out of any
    other cluster, so each object is in one only). Returns their ids, nearest first (also kept as ``grown``)."""
    target = _find(result, number)
    members = np.asarray(target["ids"], np.int64)
    x = embedding(project)
    outside = np.setdiff1d(np.asarray(project.store.uncertain_ids(), np.int64), members)
    added = outside[nearest_to(x[outside], x[members].mean(0), n)].tolist()
    taken = set(added)
    for c in result["clusters"]:
        if c is not target and taken.intersection(c["ids"]):
            c["ids"] = [i for i in c["ids"] if i not in taken]
            c["grown"] = [i for i in c.get("grown", []) if i not in taken]
            c["size"] = len(c["ids"])
    target["ids"] += added
    target["grown"] = added
    target["size"] = len(target["ids"])
    return added


def neighbours(project: Project, object_id: int, n: int) -> list[int]:
    """Ids of the ``n`` objects nearest ``object_id`` in the project's embedding (itself left out), nearest first."""
    x = embedding(project)
    distance = np.linalg.norm(x - x[object_id], axis=1)
    distance[object_id] = np.inf
    n = min(n, len(x) - 1)
    near = np.argpartition(distance, n - 1)[:n] if n > 0 else np.zeros(0, np.int64)
    return near[np.argsort(distance[near], kind="stable")].tolist()


def next_to_look(project: Project, n: int = 100, *, measure: str = "margin", seed: int = 0) -> dict:
    """The ``n`` unvalidated objects to look at next: uncertain under ``measure`` and diverse (``diverse_uncertain``
    in the embedding). Returns {measure, n_candidates, ids (most uncertain first)}."""
    rows = project.store.predicted_objects()
    if not rows:
        return {"measure": measure, "n_candidates": 0, "ids": []}
    ids, probability = np.asarray([i for i, _ in rows], np.int64), np.asarray([p for _, p in rows])
    stored = uncertainty_of(project.root)
    score = uncertain_score(measure, margin=stored["margin"][ids] if stored else None,
                            entropy=stored["entropy"][ids] if stored else None, probability=probability)
    picked = diverse_uncertain(score, embedding(project)[ids], n, seed=seed)
    return {"measure": measure, "n_candidates": len(ids), "ids": ids[picked].tolist()}

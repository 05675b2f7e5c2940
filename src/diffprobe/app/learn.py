"""Learning from the decisions, on the cached features only (no image is read again, no backbone runs).

``retrain``: a new head (the logistic regression of ``workflows.adapt``) on every validated label, then every
object re-predicted; objects still ``predicted`` follow the new head. ``cluster``: k-means on the uncertain
objects (still predicted, below a probability), each cluster ordered by distance to its centre, so a person can
name a whole group at once.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.special import softmax
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from ..probe.calibration import fit_temperature
from ..utils import DiffprobeError
from ..workflows.adapt import fit_adapted_head
from .project import Project

CHUNK = 8192  # objects re-predicted at a time, so a 100,000-object project never holds all logits twice
CLUSTER_DIMS = 32  # k-means runs on this many principal components: fast, and distances mean more than in 4,000-D


def retrain(project: Project, *, user: str, seed: int = 0) -> dict:
    """Refit the head on the validated objects; re-predict all objects. Classes with fewer than 2 validated
    objects are left out of the fit (and named in ``left_out``). Returns what changed."""
    started = time.perf_counter()
    ids, labels = project.store.validated()
    counts = {c: labels.count(c) for c in dict.fromkeys(labels)}
    classes = [c for c in project.store.classes() if counts.get(c, 0) >= 2]
    left_out = sorted(c for c, n in counts.items() if n < 2)
    if len(classes) < 2:
        raise DiffprobeError(f"retraining needs at least 2 classes with 2 validated images each; validated so far: "
                             f"{counts or 'none'}")
    keep = [k for k, lab in enumerate(labels) if lab in classes]
    features = project.features()
    x = np.asarray(features[np.asarray([ids[k] for k in keep])], np.float32)
    y = np.asarray([classes.index(labels[k]) for k in keep])
    head, cv_logits, c = fit_adapted_head(x, y, seed=seed)
    temperature = fit_temperature(cv_logits, y)
    n = len(features)
    best, prob = np.empty(n, np.int64), np.empty(n, np.float64)
    for start in range(0, n, CHUNK):
        p = softmax(head.logits(np.asarray(features[start : start + CHUNK], np.float32)) / temperature, axis=1)
        best[start : start + CHUNK], prob[start : start + CHUNK] = p.argmax(1), p.max(1)
    changed = project.store.set_predictions(list(range(n)), [classes[i] for i in best], prob.tolist(), user=user,
                                            classes=classes, n_validated=len(keep))
    return {"n_validated": len(keep), "classes": classes, "left_out": left_out, "C": c,
            "temperature": round(temperature, 4),
            "cross_validated_accuracy": round(float((cv_logits.argmax(1) == y).mean()), 4),
            "n_changed": changed, "seconds": round(time.perf_counter() - started, 2)}


def cluster(project: Project, *, k: int = 8, max_probability: float = 0.8, seed: int = 0) -> dict:
    """k-means on the objects still ``predicted`` with probability below ``max_probability``. Returns
    {k, max_probability, n_objects, clusters: [{cluster, size, ids (nearest to the centre first)}]}."""
    if k < 2:
        raise DiffprobeError(f"k must be at least 2, got {k}")
    if not 0 < max_probability <= 1:
        raise DiffprobeError(f"max_probability must be in (0, 1], got {max_probability}")
    ids = project.store.uncertain_ids(max_probability)
    if len(ids) < k:
        raise DiffprobeError(f"only {len(ids)} unvalidated objects below probability {max_probability}; raise "
                             f"max_probability or ask for fewer than {k} clusters")
    x = StandardScaler().fit_transform(np.asarray(project.features()[np.asarray(ids)], np.float32))
    dims = min(CLUSTER_DIMS, x.shape[0], x.shape[1])
    x = PCA(n_components=dims, random_state=seed).fit_transform(x) if dims < x.shape[1] else x
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    distance = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    clusters = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        members = members[np.argsort(distance[members], kind="stable")]
        clusters.append({"cluster": c, "size": len(members), "ids": [int(ids[m]) for m in members]})
    clusters.sort(key=lambda cl: -cl["size"])
    return {"k": k, "max_probability": max_probability, "n_objects": len(ids), "clusters": clusters}

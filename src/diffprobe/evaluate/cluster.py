"""k-means on frozen features: do classes separate without any label? (NMI, ARI, purity)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from ..config.evaluate import ClusterConfig
from ..utils import DiffprobeError


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of images whose cluster's majority class is their own class."""
    total = 0
    for c in np.unique(clusters):
        total += np.bincount(labels[clusters == c]).max()
    return float(total / len(labels))


def kmeans_scores(features: np.ndarray, labels: np.ndarray, k: int | None = None, seed: int = 0,
                  n_init: int = 3) -> dict:
    """Standardise, k-means with k = number of classes by default; NMI, ARI and purity against labels.

    features (N, D), labels (N,) int.
    """
    if len(features) != len(labels):
        raise DiffprobeError(f"{len(features)} feature rows but {len(labels)} labels")
    k = k or len(np.unique(labels))
    if k < 2 or k > len(features):
        raise DiffprobeError(f"k={k} clusters is impossible for {len(features)} images")
    z = StandardScaler().fit_transform(np.asarray(features, dtype=np.float32))
    clusters = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(z)
    return {"k": int(k), "n_images": int(len(labels)),
            "nmi": float(normalized_mutual_info_score(labels, clusters)),
            "ari": float(adjusted_rand_score(labels, clusters)),
            "purity": purity(labels, clusters)}


def cluster_store(store, *, block: str | None = None, timestep: int | None = None, split: str = ClusterConfig.split,
                  k: int | None = None, seed: int = ClusterConfig.seed, results: dict | None = None) -> dict:
    """k-means on one pair of a feature store (by default the probe's best pair in ``results``, else the first)
    over the ``split`` part (or ``all``): the pair, the part and ``kmeans_scores``. Writes nothing
    (``workflows.pipeline.run_cluster`` writes ``cluster.json``)."""
    if block is None or timestep is None:
        if results is not None:
            block, timestep = results["best"]["block"], results["best"]["timestep"]
        else:
            block, timestep = store.pairs[0]
    mask = store.splits == split if split != "all" else np.ones(len(store), bool)
    if not mask.any():
        raise DiffprobeError(f"{store.path}: no images in the {split!r} part")
    feats = np.asarray(store.get(block, timestep)[mask])
    return {"block": block, "timestep": int(timestep), "split": split, **kmeans_scores(
        feats, store.labels[mask], k=k, seed=seed)}

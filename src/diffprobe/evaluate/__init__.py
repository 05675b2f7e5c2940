"""Evaluation, computed: k-means clustering, prediction rows, class maps for other datasets, the shift transforms,
unknowns, abundance and zero-shot classification. The commands that read folders and write results on top of
these are in ``workflows/`` (``evaluate``, ``shifts``, ``predict``, ``calibrate``, ``zeroshot``, ``export_model``).

What this package exports is its public API, the one the application (``cli/``, ``app/``) may import (the
``cli-seam`` and ``app-seam`` contracts of ``pyproject.toml``)."""

from .abundance import adjusted_classify_and_count
from .cluster import cluster_store, kmeans_scores

__all__ = ["adjusted_classify_and_count", "cluster_store", "kmeans_scores"]

"""Evaluation, computed: k-means clustering, prediction rows, class maps for other datasets, the shift transforms,
unknowns, abundance and zero-shot classification. The commands that read folders and write results on top of
these are in ``workflows/`` (``evaluate``, ``shifts``, ``predict``, ``calibrate``, ``zeroshot``, ``export_model``)."""

from .cluster import cluster_store, kmeans_scores

__all__ = ["cluster_store", "kmeans_scores"]

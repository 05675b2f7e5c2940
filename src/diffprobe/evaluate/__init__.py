"""Evaluation: k-means clustering, other datasets and class maps, shifts, calibration, unknowns, abundance."""

from .cluster import cluster_store, kmeans_scores

__all__ = ["cluster_store", "kmeans_scores"]

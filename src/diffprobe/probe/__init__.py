"""Probes: batched linear probes over the (block, timestep) grid, selection, metrics, bundles."""

from .bundle import ClassifierBundle
from .linear import GridProbe, LinearHead
from .metrics import chance_accuracy, classification_metrics
from .run import run_probe

__all__ = ["ClassifierBundle", "GridProbe", "LinearHead", "chance_accuracy", "classification_metrics", "run_probe"]

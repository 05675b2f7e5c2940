"""Probes: batched linear probes over the (block, timestep) grid, selection, metrics, bundles and reading ensembles."""

from .bundle import ClassifierBundle
from .ensemble import ReadingEnsemble, build_ensemble, load_bundle
from .linear import GridProbe, LinearHead
from .metrics import chance_accuracy, classification_metrics

__all__ = ["ClassifierBundle", "GridProbe", "LinearHead", "ReadingEnsemble", "build_ensemble", "chance_accuracy",
           "classification_metrics", "load_bundle"]

"""Probes: batched linear probes over the (block, timestep) grid, selection, metrics, bundles and reading ensembles.

What this package exports is its public API, the one the application (``cli/``, ``app/``) may import (the
``cli-seam`` and ``app-seam`` contracts of ``pyproject.toml``): the estimators (``GridProbe``, ``MLPProbe``) and
their heads, the classifier bundle and the reading ensemble, the few-shot head (``fit_readout``), the temperature
(``fit_temperature``) and the metrics."""

from .bundle import ClassifierBundle
from .calibration import fit_temperature
from .ensemble import ReadingEnsemble, build_ensemble, load_bundle
from .linear import GridProbe, LinearHead
from .metrics import chance_accuracy, classification_metrics
from .mlp import MLPHead, MLPProbe
from .readout import fit_readout

__all__ = ["ClassifierBundle", "GridProbe", "LinearHead", "MLPHead", "MLPProbe", "ReadingEnsemble", "build_ensemble",
           "chance_accuracy", "classification_metrics", "fit_readout", "fit_temperature", "load_bundle"]

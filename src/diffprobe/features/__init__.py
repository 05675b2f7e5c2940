"""Features: which (block, timestep) pairs to read, the on-disk feature store that caches them, and
``DiffusionFeatures``, the same features as a scikit-learn transformer."""

from .extract import POOLINGS, FeatureSpec, pool
from .store import FeatureStore, extract_features
from .transformer import DiffusionFeatures

__all__ = ["POOLINGS", "DiffusionFeatures", "FeatureSpec", "FeatureStore", "extract_features", "pool"]

"""Features: which (block, timestep) pairs to read, and the on-disk feature store that caches them."""

from .extract import POOLINGS, FeatureSpec, pool
from .store import FeatureStore, extract_features

__all__ = ["POOLINGS", "FeatureSpec", "FeatureStore", "extract_features", "pool"]

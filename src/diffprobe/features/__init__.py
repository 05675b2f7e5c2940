"""Features: taps at (block, timestep), pooling, noise ensembles, the on-disk feature store."""

from .extract import POOLINGS, FeatureSpec, features_batch, pool
from .store import FeatureStore, extract_features

__all__ = ["POOLINGS", "FeatureSpec", "FeatureStore", "extract_features", "features_batch", "pool"]

"""Which features to read: the (block, timestep) grid, pooling and noise ensemble of a run
(``FeatureSpec``, defined in ``diffprobe.config.features``), and the view ensemble.

The backbones compute them (``Backbone.features_batch``); the store caches them on disk.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..backbones.base import POOLINGS, Backbone, pool
from ..config.features import VIEWS, FeatureSpec
from ..data.preprocess import dihedral

__all__ = ["POOLINGS", "VIEWS", "FeatureSpec", "dihedral", "pool", "undo_dihedral_grid", "view_features"]


def undo_dihedral_grid(features: np.ndarray, view: int, grid: int) -> np.ndarray:
    """(B, C*grid*grid) ``gridN`` features of view ``view`` of an image, with the cells put back where they lie in
    the image itself, so cell (i, j) of every view describes the same part of the organism."""
    maps = features.reshape(len(features), -1, grid, grid)
    if view in (1, 3, 6, 7):
        maps = maps[..., ::-1]
    maps = np.rot90(maps, k=-(0, 0, 2, 2, 1, 3, 1, 3)[view], axes=(2, 3))
    return np.ascontiguousarray(maps).reshape(len(features), -1)


def view_features(backbone: Backbone, images: np.ndarray, spec: FeatureSpec) -> dict[tuple[str, int], np.ndarray]:
    """``backbone.features_batch`` averaged over ``spec.views`` views of each image (grid poolings aligned to
    the image first: ``undo_dihedral_grid``)."""
    if spec.views == 1:
        return backbone.features_batch(images, spec)
    one = replace(spec, views=1)
    grid = int(spec.pooling[4:]) if spec.pooling.startswith("grid") else 0
    total: dict[tuple[str, int], np.ndarray] = {}
    for v in range(spec.views):
        for key, f in backbone.features_batch(dihedral(images, v), one).items():
            if grid:
                f = undo_dihedral_grid(f, v, grid)
            total[key] = f if v == 0 else total[key] + f
    return {key: f / spec.views for key, f in total.items()}

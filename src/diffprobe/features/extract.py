"""Which features to read: the (block, timestep) grid, pooling and noise ensemble of a run.

The backbones compute them (``Backbone.features_batch``); the store caches them on disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from ..backbones.base import POOLINGS, Backbone, pool
from ..utils import PRECISIONS, DiffprobeError, legacy_precision

__all__ = ["POOLINGS", "VIEWS", "FeatureSpec", "dihedral", "pool", "undo_dihedral_grid", "view_features"]

# Plankton have no canonical orientation: features can be averaged over the symmetries of the square.
# The first 2 views are the identity and a mirror, the first 4 the mirrors and the half turn, 8 all of them.
VIEWS = (1, 2, 4, 8)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to read. Saved with every feature store and classifier bundle.

    timesteps: DDPM timesteps (0..999); small-to-moderate noise is usually best.
    blocks:    block names (``down0..``, ``mid``, ``up0..``); empty = every block.
    pooling:   avg (global average, default) | max | avgmax (both, concatenated) | gridN (N x N average grid, N in 2, 4, 8).
    n_noise:   average features over this many noise draws (noise ensemble).
    views:     average features over this many flips / quarter turns of each image (1, 2, 4 or 8;
               test-time augmentation: ``views`` forward passes per image and timestep).
    seed:      global seed mixed into each image's noise seed.
    precision: auto | fp32 | bf16 for the forward pass (``utils.resolve_precision``: auto is bf16 only
               where the hardware runs it natively).
    """

    timesteps: tuple[int, ...] = (1, 10, 25, 50, 100, 200, 400)
    blocks: tuple[str, ...] = ()
    pooling: str = "avg"
    n_noise: int = 1
    views: int = 1
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.timesteps or any(not 0 <= t < 1000 for t in self.timesteps):
            raise DiffprobeError(f"timesteps must be between 0 and 999, got {list(self.timesteps)}")
        if self.pooling not in POOLINGS:
            raise DiffprobeError(f"unknown pooling {self.pooling!r}; choose one of {POOLINGS}")
        if self.precision not in PRECISIONS:
            raise DiffprobeError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.views not in VIEWS:
            raise DiffprobeError(f"views must be one of {VIEWS}, got {self.views!r}")
        if not isinstance(self.n_noise, int) or self.n_noise < 1:
            raise DiffprobeError(f"n_noise must be a positive integer, got {self.n_noise!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timesteps"], d["blocks"] = list(self.timesteps), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(**legacy_precision(d))


def dihedral(images: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` (0..7) of (B, S, S) images: 0 identity, 1 left-right mirror, 2 half turn, 3 up-down
    mirror (half turn, then mirrored), 4 and 5 quarter turns, 6 and 7 the diagonal mirrors."""
    if not 0 <= view < 8:
        raise DiffprobeError(f"view must be between 0 and 7, got {view}")
    turned = np.rot90(images, k=(0, 0, 2, 2, 1, 3, 1, 3)[view], axes=(1, 2))
    return np.ascontiguousarray(turned[:, :, ::-1] if view in (1, 3, 6, 7) else turned)


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

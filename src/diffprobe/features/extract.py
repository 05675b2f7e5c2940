"""Which features to read: the (block, timestep) grid, pooling and noise ensemble of a run.

The backbones compute them (``Backbone.features_batch``); the store caches them on disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..backbones.base import POOLINGS, pool
from ..utils import DiffprobeError

__all__ = ["POOLINGS", "FeatureSpec", "pool"]


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to read. Saved with every feature store and classifier bundle.

    timesteps: DDPM timesteps (0..999); small-to-moderate noise is usually best.
    blocks:    block names (``down0..``, ``mid``, ``up0..``); empty = every block.
    pooling:   avg (global average, default) | max | avgmax (both, concatenated) | grid2 (2x2 average grid).
    n_noise:   average features over this many noise draws (noise ensemble).
    seed:      global seed mixed into each image's noise seed.
    bf16:      bf16 autocast for the forward pass (AMX on CPU, tensor cores on GPU).
    """

    timesteps: tuple[int, ...] = (1, 10, 25, 50, 100, 200, 400)
    blocks: tuple[str, ...] = ()
    pooling: str = "avg"
    n_noise: int = 1
    seed: int = 0
    bf16: bool = True

    def __post_init__(self):
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.timesteps or any(not 0 <= t < 1000 for t in self.timesteps):
            raise DiffprobeError(f"timesteps must be between 0 and 999, got {list(self.timesteps)}")
        if self.pooling not in POOLINGS:
            raise DiffprobeError(f"unknown pooling {self.pooling!r}; choose one of {POOLINGS}")
        if not isinstance(self.n_noise, int) or self.n_noise < 1:
            raise DiffprobeError(f"n_noise must be a positive integer, got {self.n_noise!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timesteps"], d["blocks"] = list(self.timesteps), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(**d)

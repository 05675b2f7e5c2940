"""Which features to read (``FeatureSpec``): the (block, timestep) grid, pooling, noise and view ensembles.
``diffprobe.features.extract`` imports it from here and re-exports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..base import PRECISIONS, DiffprobeError, legacy_precision
from .backbones import POOLINGS

# Plankton have no canonical orientation: features can be averaged over the symmetries of the square.
# The first 2 views are the identity and a mirror, the first 4 the mirrors and the half turn, 8 all of them.
VIEWS = (1, 2, 4, 8)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to read. Saved with every feature store and classifier bundle.

    timesteps: DDPM timesteps (0..999); small-to-moderate noise is usually best.
    blocks:    block names (``down0..``, ``mid``, ``up0..``); empty = every block.
    pooling:   avg (global average, default) | max | avgmax (both, concatenated) | gridN (N x N average grid,
               N in 2, 4, 8).
    n_noise:   average features over this many noise draws (noise ensemble).
    views:     average features over this many flips / quarter turns of each image (1, 2, 4 or 8;
               test-time augmentation: ``views`` forward passes per image and timestep).
    seed:      global seed mixed into each image's noise seed.
    precision: auto | fp32 | bf16 for the forward pass (``utils.resolve_precision``: auto is bf16 only
               where it is measured faster).
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


@dataclass(frozen=True)
class ExtractConfig:
    """Images per forward pass when features are computed (``extract_features``, and the commands that read
    features: ``features``, ``zeroshot``, ``predict``, ``app init``); ``crop``: the features stage cuts each image
    to its organism (``data.preprocess``) whatever the model was pretrained on (None: as the model's
    ``preprocess.json``), and the feature store, hence the bundle, records it."""

    batch_size: int = 256
    crop: bool | None = None

"""Which features to read (``FeatureSpec``): the (block, timestep) grid, pooling, noise and view ensembles.
``diffprobe.features.extract`` imports it from here and re-exports it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, NonNegativeInt, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import NonEmptyTupleOf, Precision, Settings, TupleOf, legacy_precision
from .backbones import POOLINGS, Timestep

# Plankton have no canonical orientation: features can be averaged over the symmetries of the square.
# The first 2 views are the identity and a mirror, the first 4 the mirrors and the half turn, 8 all of them.
VIEWS = (1, 2, 4, 8)


def _a_view_count(n: int) -> int:  # a Literal of these numbers would take True for 1
    if n not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}")
    return n


@dataclass(frozen=True)
class FeatureSpec(Settings):
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

    timesteps: NonEmptyTupleOf[Timestep] = (1, 10, 25, 50, 100, 200, 400)
    blocks: TupleOf[str] = ()
    pooling: Literal[POOLINGS] = "avg"
    n_noise: PositiveInt = 1
    views: Annotated[int, AfterValidator(_a_view_count)] = 1
    seed: NonNegativeInt = 0
    precision: Precision = "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timesteps"], d["blocks"] = list(self.timesteps), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(**legacy_precision(d))


@dataclass(frozen=True)
class ExtractConfig(Settings):
    """Images per forward pass when features are computed (``extract_features``, and the commands that read
    features: ``features``, ``zeroshot``, ``predict``, ``app init``); ``crop``: the features stage cuts each image
    to its organism (``data.preprocess``) whatever the model was pretrained on (None: as the model's
    ``preprocess.json``), and the feature store, hence the bundle, records it."""

    batch_size: PositiveInt = 256
    crop: bool | None = None

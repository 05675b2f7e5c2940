"""The settings of the evaluation commands: zero-shot classification (``ZeroShotConfig``, with the
diffusion classifier's ``DiffusionClassifierConfig``) and the field-use commands (the defaults of ``evaluate``, ``shift``, ``predict``, ``calibrate``, ``cluster``)."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import DiffprobeError, NonEmptyTupleOf, PairOf, Precision, Settings
from .backbones import POOLINGS, Timestep
from .features import ExtractConfig


DC_CONDITIONS = ("prototype", "nearest")  # DiffusionClassifierConfig.condition's choices


@dataclass(frozen=True)
class DiffusionClassifierConfig(Settings):
    """schedule: stages of (new (t, eps) samples per candidate, candidates kept after the stage).

    The default scores every class on 4 samples, keeps the 10 best, adds 8 samples, keeps 3,
    adds 16 and picks the lowest mean error (28 samples for the finalists).
    max_images: test images classified (a seeded subset; 0 = all), as each costs hundreds of
    denoiser calls. shots: references per class for the conditioning prototypes (0 = all).
    t_range: the (low, high) timesteps its samples are drawn from, or "auto": the bucket of the model's
    conditioning diagnostic where r matters most (the largest (shuffled - own) / own in its summary.json).
    condition: what r each class is scored with: ``prototype``, the mean r of its references (one per class), or
    ``nearest``, the r of its reference closest to the image (cosine, centred as for k-NN; one per image and
    class). The denoiser was trained on single images' r, and a mean of many can be far from any of them.
    """

    schedule: NonEmptyTupleOf[PairOf[PositiveInt]] = ((4, 10), (8, 3), (16, 1))
    t_range: PairOf[int] | str = (1, 1000)
    max_images: NonNegativeInt = 500
    shots: NonNegativeInt = 0
    batch_size: PositiveInt = 512  # denoiser inputs per forward pass
    condition: Literal[DC_CONDITIONS] = "prototype"

    def __post_init__(self):
        if self.t_range == "auto":
            return
        try:  # "LOW,HIGH" as a command line or a study config writes it, or a pair
            lo, hi = (int(v) for v in (self.t_range.split(",") if isinstance(self.t_range, str) else self.t_range))
        except ValueError:
            raise DiffprobeError(f"the diffusion classifier's timesteps must be LOW,HIGH (e.g. 500,1000) or "
                                 f"'auto', got {self.t_range!r}") from None
        if not 0 <= lo < hi <= 1000:
            raise DiffprobeError(f"the diffusion classifier's timesteps must satisfy 0 <= LOW < HIGH <= 1000, "
                                 f"got {self.t_range!r}")
        object.__setattr__(self, "t_range", (lo, hi))

    @property
    def samples(self) -> int:
        return sum(n for n, _ in self.schedule)


@dataclass(frozen=True)
class ZeroShotConfig(Settings):
    """block/timestep: the representation (default: the backbone's own, e.g. RC-DiT ``encoder`` at t=0);
    pooling/n_noise: how its features are read (as in ``FeatureSpec``; for a U-Net, those of its probe run).

    shots: references per class for prototypes (0 = all train images). episodes: seeded draws
    of the references for each k > 0. center: subtract the train mean before L2 normalisation.
    positive: fnmatch pattern of the positive classes for the binary task (None: no binary task).
    diffusion: diffusion-classifier settings (None: skip it).
    """

    block: str | None = None
    timestep: Timestep | None = None
    pooling: Literal[POOLINGS] = "avg"
    n_noise: PositiveInt = 1
    shots: NonEmptyTupleOf[NonNegativeInt] = (1, 5, 10, 0)
    episodes: PositiveInt = 5
    knn_k: PositiveInt = 20
    knn_temperature: PositiveFloat = 0.07
    center: bool = True
    positive: str | None = None
    diffusion: DiffusionClassifierConfig | None = field(default_factory=DiffusionClassifierConfig)
    seed: NonNegativeInt = 0
    precision: Precision = "auto"


# ---- the field-use commands ---------------------------------------------------------------------------------

SEVERITIES = (1, 2, 3, 4, 5)  # of every shift of the robustness suite
Severity = Annotated[int, Field(ge=SEVERITIES[0], le=SEVERITIES[-1])]


@dataclass(frozen=True)
class EvaluateConfig(Settings):
    """``evaluate_bundle``: which part of the data (train | val | test | all), the synthetic prior-shift
    samples (``n_trials``, drawn by ``seed``)."""

    part: str = "all"
    n_trials: NonNegativeInt = 50
    seed: NonNegativeInt = 0


@dataclass(frozen=True)
class ShiftConfig(Settings):
    """``run_shift_suite``: severities, the part of the split, the seed of the random shifts and the seed a
    folder is split with (as 'diffprobe split')."""

    severities: NonEmptyTupleOf[Severity] = SEVERITIES
    part: str = "test"
    seed: NonNegativeInt = 0
    split_seed: NonNegativeInt = 0


PREDICTION_FORMATS = ("csv", "kaggle")  # the predictions file: diffprobe's top-3 rows, or the NDSB submission layout


@dataclass(frozen=True)
class PredictConfig(Settings):
    """``predict_files``: images per batch, the output layout (csv | kaggle) and the images per shard (the unit
    of work that is saved, resumed and shared among processes under ``torchrun``; a multiple of the batch keeps
    every batch the same whatever the number of processes)."""

    batch_size: PositiveInt = ExtractConfig.batch_size
    format: Literal[PREDICTION_FORMATS] = "csv"
    shard_size: PositiveInt = 4096


@dataclass(frozen=True)
class CalibrateConfig(Settings):
    """``calibrate_bundle``: the part of the split fitted on, the share of known images the unknown
    thresholds accept, and the seed a folder is split with."""

    part: str = "val"
    accept: Annotated[float, Field(gt=0, le=1)] = 0.95
    split_seed: NonNegativeInt = 0


@dataclass(frozen=True)
class ClusterConfig(Settings):
    """``cluster_store``: k-means on which part of the store (train | val | test | all), seeded."""

    split: str = "test"
    seed: NonNegativeInt = 0

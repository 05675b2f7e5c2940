"""The settings of the evaluation commands: zero-shot classification (``ZeroShotConfig``, with the
diffusion classifier's ``DiffusionClassifierConfig``; ``diffprobe.evaluate.zeroshot`` re-exports them)
and the field-use commands (the defaults of ``evaluate``, ``shift``, ``predict``, ``calibrate``, ``cluster``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base import DiffprobeError
from .features import ExtractConfig


DC_CONDITIONS = ("prototype", "nearest")  # DiffusionClassifierConfig.condition's choices


@dataclass(frozen=True)
class DiffusionClassifierConfig:
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

    schedule: tuple[tuple[int, int], ...] = ((4, 10), (8, 3), (16, 1))
    t_range: tuple[int, int] | str = (1, 1000)
    max_images: int = 500
    shots: int = 0
    batch_size: int = 512  # denoiser inputs per forward pass
    condition: str = "prototype"

    def __post_init__(self):
        if self.condition not in DC_CONDITIONS:
            raise DiffprobeError(f"the diffusion classifier's condition must be one of {DC_CONDITIONS}, "
                                 f"got {self.condition!r}")
        object.__setattr__(self, "schedule", tuple((int(n), int(k)) for n, k in self.schedule))
        if not self.schedule or any(n < 1 or k < 1 for n, k in self.schedule):
            raise DiffprobeError(f"diffusion-classifier schedule needs stages of (samples >= 1, keep >= 1), "
                                 f"got {list(self.schedule)}")
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
class ZeroShotConfig:
    """block/timestep: the representation (default: the backbone's own, e.g. RC-DiT ``encoder`` at t=0);
    pooling/n_noise: how its features are read (as in ``FeatureSpec``; for a U-Net, those of its probe run).

    shots: references per class for prototypes (0 = all train images). episodes: seeded draws
    of the references for each k > 0. center: subtract the train mean before L2 normalisation.
    positive: fnmatch pattern of the positive classes for the binary task (None: no binary task).
    diffusion: diffusion-classifier settings (None: skip it).
    """

    block: str | None = None
    timestep: int | None = None
    pooling: str = "avg"
    n_noise: int = 1
    shots: tuple[int, ...] = (1, 5, 10, 0)
    episodes: int = 5
    knn_k: int = 20
    knn_temperature: float = 0.07
    center: bool = True
    positive: str | None = None
    diffusion: DiffusionClassifierConfig | None = field(default_factory=DiffusionClassifierConfig)
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        if any(k < 0 for k in self.shots) or not self.shots:
            raise DiffprobeError(f"shots must be non-negative integers (0 = all), got {list(self.shots)}")
        if self.episodes < 1 or self.knn_k < 1:
            raise DiffprobeError("episodes and knn_k must be at least 1")


# ---- the field-use commands ---------------------------------------------------------------------------------

SEVERITIES = (1, 2, 3, 4, 5)  # of every shift of the robustness suite


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate_bundle``: which part of the data (train | val | test | all), the synthetic prior-shift
    samples (``n_trials``, drawn by ``seed``)."""

    part: str = "all"
    n_trials: int = 50
    seed: int = 0


@dataclass(frozen=True)
class ShiftConfig:
    """``run_shift_suite``: severities, the part of the split, the seed of the random shifts and the seed a
    folder is split with (as 'diffprobe split')."""

    severities: tuple[int, ...] = SEVERITIES
    part: str = "test"
    seed: int = 0
    split_seed: int = 0


@dataclass(frozen=True)
class PredictConfig:
    """``predict_files``: images per batch, the output layout (csv | kaggle) and the images per shard (the unit
    of work that is saved, resumed and shared among processes under ``torchrun``; a multiple of the batch keeps
    every batch the same whatever the number of processes)."""

    batch_size: int = ExtractConfig.batch_size
    format: str = "csv"
    shard_size: int = 4096


@dataclass(frozen=True)
class CalibrateConfig:
    """``calibrate_bundle``: the part of the split fitted on, the share of known images the unknown
    thresholds accept, and the seed a folder is split with."""

    part: str = "val"
    accept: float = 0.95
    split_seed: int = 0


@dataclass(frozen=True)
class ClusterConfig:
    """``cluster_store``: k-means on which part of the store (train | val | test | all), seeded."""

    split: str = "test"
    seed: int = 0

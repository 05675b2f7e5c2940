"""The trainers' settings (DDPM U-Net, RC-DiT, the baselines): plain dataclasses, saved as each run's
``config.json``. The trainers (``diffprobe.pretrain.ddpm``, ``.rcdit``, ``.baselines``) import them from
here and re-export them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, ClassVar

from ..base import DiffprobeError, legacy_precision
from .backbones import ARCHS, ArchConfig, RCDiTConfig, ResNetConfig, UNetConfig, ViTConfig, arch_from_dict, arch_to_dict

if TYPE_CHECKING:
    from ..data.preprocess import Preprocess


def _preprocess(size: int, invert: bool, flatfield: bool) -> Preprocess:
    from ..data.preprocess import Preprocess  # noqa: PLC0415 - numpy and scipy only when a run needs it

    return Preprocess(size=size, invert=invert, flatfield=flatfield)


class RunConfig:
    """Base of the trainers' config dataclasses: the checks they share, with the config named in errors."""

    settings_name: ClassVar[str]  # "pretrain", "baseline", ...: how errors name these settings
    # Settings added after runs were saved without them, with the value those runs were trained with.
    added_later: ClassVar[dict] = {"flatfield": False}

    @classmethod
    def from_dict(cls, d: dict):
        """Refuse unknown keys: a typo in a hand-written or older config.json must not fall back to a default."""
        known = {f.name for f in fields(cls)}
        d = legacy_precision(d)
        unknown = set(d) - known
        if unknown:
            raise DiffprobeError(f"unknown {cls.settings_name} settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{**{k: v for k, v in cls.added_later.items() if k in known}, **d})

    def check_counts(self, *names: str) -> None:
        """Integer settings must be ints >= 0 (bools and strings from a JSON file are refused)."""
        for name in names:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise DiffprobeError(f"{self.settings_name} setting {name} must be a non-negative integer, got {v!r}")


@dataclass
class PretrainConfig(RunConfig):
    """Everything that defines a pretraining run; saved as ``config.json`` in the run folder."""

    settings_name = "pretrain"

    unet: UNetConfig = field(default_factory=UNetConfig)
    batch_size: int = 64  # global batch, split across processes
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    ema_decay: float = 0.999
    steps: int | None = None  # budget in optimizer steps ...
    minutes: float | None = None  # ... or in wall-clock minutes (whichever ends first)
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "auto"
    augment: bool = True  # flips and 90-degree rotations: plankton have no canonical orientation
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)

    def __post_init__(self):
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**{**self.unet, "channels": tuple(self.unet["channels"])})
        self.check_counts("batch_size", "warmup_steps", "checkpoint_every", "seed")
        if self.batch_size < 1:
            raise DiffprobeError("batch_size must be at least 1")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise DiffprobeError(f"lr must be a positive number, got {self.lr!r}")
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def preprocess(self) -> Preprocess:
        return _preprocess(self.unet.image_size, self.invert, self.flatfield)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        return d


T_SAMPLINGS = ("uniform", "high")  # RCDiTPretrainConfig.t_sampling's choices
ENCODER_VIEWS = ("same", "augmented")  # RCDiTPretrainConfig.encoder_view's choices


@dataclass
class RCDiTPretrainConfig(RunConfig):
    """Everything that defines an RC-DiT run; saved as ``config.json`` in the run folder.

    r_dropout: share of images whose r is replaced by a learned null vector (classifier-free
    style regulariser; 0 disables it).
    t_sampling: ``uniform`` timesteps (the paper's), or ``high``: drawn with a density rising linearly with t,
    so the large timesteps, where the noised image alone cannot give the image back and r must, weigh more.
    encoder_view: ``same``: the encoder sees the clean image the denoiser must recover (the paper's);
    ``augmented``: its own random flip and quarter turn of it, so r cannot hand the pixels' layout over.
    """

    settings_name = "RC-DiT pretrain"

    model: RCDiTConfig = field(default_factory=RCDiTConfig)
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    ema_decay: float = 0.999
    r_dropout: float = 0.1
    t_sampling: str = "uniform"
    encoder_view: str = "same"
    steps: int | None = None
    minutes: float | None = None
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "auto"
    augment: bool = True
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = RCDiTConfig.from_dict(self.model)
        self.check_counts("batch_size", "warmup_steps", "checkpoint_every", "seed")
        if self.batch_size < 1:
            raise DiffprobeError("batch_size must be at least 1")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise DiffprobeError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.r_dropout < 1:
            raise DiffprobeError(f"r_dropout must be in [0, 1), got {self.r_dropout!r}")
        if self.t_sampling not in T_SAMPLINGS:
            raise DiffprobeError(f"t_sampling must be one of {T_SAMPLINGS}, got {self.t_sampling!r}")
        if self.encoder_view not in ENCODER_VIEWS:
            raise DiffprobeError(f"encoder_view must be one of {ENCODER_VIEWS}, got {self.encoder_view!r}")
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def preprocess(self) -> Preprocess:
        return _preprocess(self.model.image_size, self.invert, self.flatfield)

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}


METHODS = ("supervised", "simclr", "dino", "mae")
DEFAULT_ARCH = {"supervised": "resnet", "simclr": "resnet", "dino": "resnet", "mae": "vit"}


def default_arch(method: str, image_size: int = ResNetConfig.image_size, name: str | None = None) -> ArchConfig:
    name = name or DEFAULT_ARCH[method]
    if name not in ARCHS:
        raise DiffprobeError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[name](image_size=image_size)


@dataclass
class BaselineConfig(RunConfig):
    """Everything that defines a baseline run; saved as ``config.json`` in the run folder.

    Defaults (documented in the README): a half-width ResNet-18 (2.8 M parameters) for
    supervised, SimCLR and DINO, a 6-block vit_tiny-width ViT with 4 px patches (2.7 M) for MAE;
    AdamW, linear warm-up over ``warmup_fraction`` of the steps then cosine decay (timm).
    """

    settings_name = "baseline"

    method: str = "simclr"
    arch: ArchConfig | None = None  # None: the method's default at 32 px
    budget_images: int = 200_000  # training images seen (not views)
    batch_size: int = 128  # global batch, split across processes
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    clip_grad: float = 3.0
    checkpoint_every: int = 500  # steps
    seed: int = 0
    precision: str = "auto"
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)
    # supervised: the field's recipe for a CNN trained end to end (0 / None: off, the comparison's plain run)
    label_smoothing: float = 0.0  # cross-entropy against (1 - e) one-hot + e uniform
    scale_jitter: float = 0.0  # each training image zoomed by a factor in [1 - s, 1 + s]
    rotate: float = 0.0  # ... and turned by an angle in [-r, r] degrees (45: with the quarter turns, every angle)
    ema_decay: float | None = None  # export an exponential moving average of the weights
    # SimCLR
    temperature: float = 0.5  # lightly's NTXentLoss default
    projection_dim: int = 128
    min_scale: float = 0.25  # smallest crop area of SimCLR views (MAE: 0.2; DINO global views: 0.4)
    # DINO
    dino_output_dim: int = 2048
    dino_local_views: int = 0  # extra local crops of half the image size (0: the two global views only)
    momentum_start: float = 0.996
    # MAE
    mask_ratio: float = 0.75
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4

    def __post_init__(self):
        if self.method not in METHODS:
            raise DiffprobeError(f"unknown baseline method {self.method!r}; choose one of {METHODS}")
        if isinstance(self.arch, dict):
            self.arch = arch_from_dict(self.arch)
        if self.arch is None:
            self.arch = default_arch(self.method)
        if self.method == "mae" and not isinstance(self.arch, ViTConfig):
            raise DiffprobeError("MAE needs a ViT backbone; use --arch vit")
        if self.method == "dino" and isinstance(self.arch, ViTConfig) and self.dino_local_views:
            self.arch = replace(self.arch, dynamic_img_size=True)  # local crops are smaller than the image
        self.check_counts("budget_images", "batch_size", "checkpoint_every", "seed", "dino_local_views")
        if self.batch_size < 2 or self.budget_images < 1:
            raise DiffprobeError("batch_size must be at least 2 and budget_images at least 1")
        if not self.lr > 0:
            raise DiffprobeError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.mask_ratio < 1:
            raise DiffprobeError(f"mask_ratio must be in (0, 1), got {self.mask_ratio!r}")
        if not 0 <= self.label_smoothing < 1:
            raise DiffprobeError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not 0 <= self.scale_jitter < 1:
            raise DiffprobeError(f"scale_jitter must be in [0, 1), got {self.scale_jitter!r}")
        if not 0 <= self.rotate <= 180:
            raise DiffprobeError(f"rotate must be in [0, 180] degrees, got {self.rotate!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise DiffprobeError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay!r}")

    @property
    def steps(self) -> int:
        return math.ceil(self.budget_images / self.batch_size)

    @property
    def image_size(self) -> int:
        return self.arch.image_size

    @property
    def preprocess(self) -> Preprocess:
        return _preprocess(self.image_size, self.invert, self.flatfield)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = arch_to_dict(self.arch)
        return d


# The budget a pretraining command gives a run that names neither steps nor minutes.
DEFAULT_MINUTES = 60.0


@dataclass
class FinetuneConfig(RunConfig):
    """A fine-tuning run (``pretrain.finetune``): the pretrained U-Net folder, what the head reads (blocks at one
    timestep, average and max pooled, plus the object metadata), the head, the optimiser and the budget."""

    settings_name = "fine-tune"
    added_later: ClassVar[dict] = {}

    model_dir: str = ""
    blocks: tuple[str, ...] = ("down0", "down1", "down2", "mid", "up0", "up1")
    timestep: int = 1
    hidden: int = 1024
    dropout: float = 0.5
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    steps: int = 2000
    checkpoint_every: int = 250
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        self.blocks = tuple(self.blocks)
        self.check_counts("batch_size", "warmup_steps", "checkpoint_every", "seed", "steps", "timestep")
        if not self.model_dir:
            raise DiffprobeError("fine-tuning needs model_dir: the pretraining run to start from")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0 or not self.timestep < 1000:
            raise DiffprobeError("fine-tuning needs steps and batch_size >= 1, lr > 0 and a timestep in [0, 1000)")

    def to_dict(self) -> dict:
        return asdict(self)


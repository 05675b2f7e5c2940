"""The trainers' settings (DDPM U-Net, RC-DiT, the baselines): pydantic dataclasses with their bounds, saved as
each run's ``config.json``. The trainers (``diffprobe.pretrain.ddpm``, ``.rcdit``, ``.baselines``) import them from
here and re-export them."""

from __future__ import annotations

import math
from dataclasses import asdict, field, fields, replace
from typing import Annotated, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator
from pydantic.dataclasses import dataclass

from ..base import DiffprobeError, Fraction, NonEmptyTupleOf, Precision, Settings, legacy_precision
from .backbones import (ARCHS, ArchConfig, RCDiTConfig, ResNetConfig, Timestep, UNetConfig, ViTConfig, arch_from_dict,
                        arch_to_dict)

class RunConfig(Settings):
    """Base of the trainers' settings: reading a saved ``config.json``."""

    settings_name: ClassVar[str]  # "pretrain", "baseline", ...: how an unknown key's error names these settings
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


@dataclass
class PretrainConfig(RunConfig):
    """Everything that defines a pretraining run; saved as ``config.json`` in the run folder."""

    settings_name = "pretrain"

    unet: UNetConfig = field(default_factory=UNetConfig)
    batch_size: PositiveInt = 64  # global batch, split across processes
    lr: PositiveFloat = 2e-4
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: NonNegativeInt = 200
    ema_decay: Fraction = 0.999
    steps: NonNegativeInt | None = None  # budget in optimizer steps ...
    minutes: NonNegativeFloat | None = None  # ... or in wall-clock minutes (whichever ends first)
    checkpoint_every: NonNegativeInt = 500
    seed: NonNegativeInt = 0
    precision: Precision = "auto"
    augment: bool = True  # flips and 90-degree rotations: plankton have no canonical orientation
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)

    @field_validator("unet", mode="before")
    @classmethod
    def _unet_from_json(cls, v):
        return UNetConfig(**v) if isinstance(v, dict) else v

    def __post_init__(self):
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def image_size(self) -> int:
        return self.unet.image_size

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
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 2e-4
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: NonNegativeInt = 200
    ema_decay: Fraction = 0.999
    r_dropout: Fraction = 0.1
    t_sampling: Literal[T_SAMPLINGS] = "uniform"
    encoder_view: Literal[ENCODER_VIEWS] = "same"
    steps: NonNegativeInt | None = None
    minutes: NonNegativeFloat | None = None
    checkpoint_every: NonNegativeInt = 500
    seed: NonNegativeInt = 0
    precision: Precision = "auto"
    augment: bool = True
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)

    @field_validator("model", mode="before")
    @classmethod
    def _model_from_json(cls, v):
        return RCDiTConfig(**v) if isinstance(v, dict) else v

    def __post_init__(self):
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def image_size(self) -> int:
        return self.model.image_size

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

    method: Literal[METHODS] = "simclr"
    arch: ArchConfig | None = None  # None: the method's default at 32 px
    budget_images: PositiveInt = 200_000  # training images seen (not views)
    batch_size: Annotated[int, Field(ge=2)] = 128  # global batch, split across processes
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.05
    warmup_fraction: Fraction = 0.05
    clip_grad: NonNegativeFloat = 3.0
    checkpoint_every: NonNegativeInt = 500  # steps
    seed: NonNegativeInt = 0
    precision: Precision = "auto"
    invert: bool = True
    flatfield: bool = True  # divide out the illumination field (see data.preprocess)
    # supervised: the field's recipe for a CNN trained end to end (0 / None: off, the comparison's plain run)
    label_smoothing: Fraction = 0.0  # cross-entropy against (1 - e) one-hot + e uniform
    scale_jitter: Fraction = 0.0  # each training image zoomed by a factor in [1 - s, 1 + s]
    # ... and turned by an angle in [-r, r] degrees (45: with the quarter turns, every angle)
    rotate: Annotated[float, Field(ge=0, le=180)] = 0.0
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = None  # export an exponential moving average of the weights
    # the weight of a teacher's probabilities in each training image's target (knowledge distillation: the rest is
    # the label, smoothed); 0: labels only. The teacher's probabilities are given to ``train_baseline``.
    distill: Annotated[float, Field(ge=0, le=1)] = 0.0
    # SimCLR
    temperature: PositiveFloat = 0.5  # lightly's NTXentLoss default
    projection_dim: PositiveInt = 128
    # smallest crop area of SimCLR views (MAE: 0.2; DINO global views: 0.4)
    min_scale: Annotated[float, Field(gt=0, le=1)] = 0.25
    # DINO
    dino_output_dim: PositiveInt = 2048
    dino_local_views: NonNegativeInt = 0  # extra local crops of half the image size (0: the two global views only)
    momentum_start: Annotated[float, Field(ge=0, le=1)] = 0.996
    # MAE
    mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75
    decoder_dim: PositiveInt = 128
    decoder_depth: PositiveInt = 2
    decoder_heads: PositiveInt = 4

    @field_validator("arch", mode="before")
    @classmethod
    def _arch_from_json(cls, v):
        return arch_from_dict(v) if isinstance(v, dict) else v

    def __post_init__(self):
        if self.arch is None:
            self.arch = default_arch(self.method)
        if self.method == "mae" and not isinstance(self.arch, ViTConfig):
            raise DiffprobeError("MAE needs a ViT backbone; use --arch vit")
        if self.method == "dino" and isinstance(self.arch, ViTConfig) and self.dino_local_views:
            self.arch = replace(self.arch, dynamic_img_size=True)  # local crops are smaller than the image

    @property
    def steps(self) -> int:
        return math.ceil(self.budget_images / self.batch_size)

    @property
    def image_size(self) -> int:
        return self.arch.image_size

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
    blocks: NonEmptyTupleOf[str] = ("down0", "down1", "down2", "mid", "up0", "up1")
    timestep: Timestep = 1
    hidden: PositiveInt = 1024
    dropout: Fraction = 0.5
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 3e-4
    weight_decay: NonNegativeFloat = 0.05
    warmup_steps: NonNegativeInt = 100
    steps: PositiveInt = 2000
    checkpoint_every: NonNegativeInt = 250
    seed: NonNegativeInt = 0
    precision: Precision = "auto"

    def __post_init__(self):
        if not self.model_dir:  # its default, "", is not a folder: a fine-tuning run names one
            raise DiffprobeError("fine-tuning needs model_dir: the pretraining run to start from")

    def to_dict(self) -> dict:
        return asdict(self)


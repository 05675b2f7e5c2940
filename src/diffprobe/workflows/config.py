"""The workflows' settings, as pydantic dataclasses without torch: the controlled comparison
(``compare.compare``), the demo (``pipeline.demo``) and few-shot adaptation (``adapt.adapt_bundle``).
The functions take these as their parameters' defaults; the command line reads them from here
(``diffprobe.config.default_of``). The stages' own settings are in ``diffprobe.config``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import NonEmptyTupleOf, PairOf, Precision, Settings, TupleOf
from ..config.backbones import Timestep, UNetConfig, Widths
from ..config.data import SETTINGS, PartShare, SplitConfig, SynthConfig
from ..config.pretrain import METHODS as BASELINE_METHODS
from ..config.pretrain import BaselineConfig

METHODS = ("ddpm",) + BASELINE_METHODS
READOUTS = ("auto", "hidden", "features")  # AdaptConfig.readout's choices


@dataclass(frozen=True)
class CompareConfig(Settings):
    """Every method (``methods``) in every setting (``settings``), each trained on ``budget_images`` training
    images (the baselines' own default budget), probed alike; ``shots``: the tail / head thresholds in training
    images per class. As curves (``compare.compare_curves``): ``label_shots`` labelled images per class (None:
    all) for the label-efficiency probe, ``draws`` random draws of them."""

    methods: NonEmptyTupleOf[Literal[METHODS]] = METHODS
    settings: NonEmptyTupleOf[Literal[SETTINGS]] = SETTINGS
    budget_images: PositiveInt = BaselineConfig.budget_images
    seed: NonNegativeInt = 0
    image_size: PositiveInt = UNetConfig.image_size
    per_class: PositiveInt = SplitConfig.per_class
    val: PartShare = SplitConfig.val
    test: PartShare = SplitConfig.test
    shots: PairOf[NonNegativeInt] = (20, 100)
    precision: Precision = "auto"
    label_shots: TupleOf[PositiveInt | None] = (1, 5, 10, 50, None)
    draws: PositiveInt = 3


@dataclass(frozen=True)
class DemoConfig(Settings):
    """The demo: a small U-Net pretrained for ``steps`` on synthetic plankton (``n_per_class`` images per class)
    or a real folder, read at ``timesteps``."""

    image_size: PositiveInt = UNetConfig.image_size
    steps: PositiveInt = 700
    channels: Widths = (32, 64, 64)
    timesteps: NonEmptyTupleOf[Timestep] = (1, 10, 50, 100, 200, 400)
    n_per_class: PositiveInt = SynthConfig.n_per_class
    seed: NonNegativeInt = 0
    precision: Precision = "auto"


@dataclass(frozen=True)
class AdaptConfig(Settings):
    """Few-shot adaptation: the preprocessing polarity (auto: each image's background decides whether it is
    inverted), what the new output layer reads (``READOUTS``; auto: the bundle's hidden layer or
    its features, whichever the labelled images' cross-validated log loss prefers) and the seed of the
    cross-validation folds."""

    polarity: str = "auto"
    readout: Literal[READOUTS] = "auto"
    seed: NonNegativeInt = 0

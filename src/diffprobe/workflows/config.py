"""The workflows' settings, as plain dataclasses without torch: the controlled comparison
(``compare.compare``), the demo (``pipeline.demo``) and few-shot adaptation (``adapt.adapt_bundle``).
The functions take these as their parameters' defaults; the command line reads them from here
(``diffprobe.config.default_of``). The stages' own settings are in ``diffprobe.config``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.backbones import UNetConfig
from ..config.data import SETTINGS, SplitConfig, SynthConfig
from ..config.pretrain import METHODS as BASELINE_METHODS
from ..config.pretrain import BaselineConfig

METHODS = ("ddpm",) + BASELINE_METHODS


@dataclass(frozen=True)
class CompareConfig:
    """Every method (``methods``) in every setting (``settings``), each trained on ``budget_images`` training
    images (the baselines' own default budget), probed alike; ``shots``: the tail / head thresholds in training
    images per class. As curves (``compare.compare_curves``): ``label_shots`` labelled images per class (None:
    all) for the label-efficiency probe, ``draws`` random draws of them."""

    methods: tuple[str, ...] = METHODS
    settings: tuple[str, ...] = SETTINGS
    budget_images: int = BaselineConfig.budget_images
    seed: int = 0
    image_size: int = UNetConfig.image_size
    per_class: int = SplitConfig.per_class
    val: float = SplitConfig.val
    test: float = SplitConfig.test
    shots: tuple[int, int] = (20, 100)
    precision: str = "auto"
    label_shots: tuple[int | None, ...] = (1, 5, 10, 50, None)
    draws: int = 3


@dataclass(frozen=True)
class DemoConfig:
    """The demo: a small U-Net pretrained for ``steps`` on synthetic plankton (``n_per_class`` images per class)
    or a real folder, read at ``timesteps``."""

    image_size: int = UNetConfig.image_size
    steps: int = 700
    channels: tuple[int, ...] = (32, 64, 64)
    timesteps: tuple[int, ...] = (1, 10, 50, 100, 200, 400)
    n_per_class: int = SynthConfig.n_per_class
    seed: int = 0
    precision: str = "auto"


@dataclass(frozen=True)
class AdaptConfig:
    """Few-shot adaptation: the preprocessing polarity (auto: each image's background decides whether it is
    inverted), what the new output layer reads (``READOUTS``; auto: the bundle's hidden layer or
    its features, whichever the labelled images' cross-validated log loss prefers) and the seed of the
    cross-validation folds."""

    polarity: str = "auto"
    readout: str = "auto"
    seed: int = 0


READOUTS = ("auto", "hidden", "features")  # AdaptConfig.readout's choices

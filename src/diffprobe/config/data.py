"""The data layer's settings: how a dataset is split (``diffprobe split`` and every command that splits
``--data``), the synthetic plankton of ``diffprobe synth``, the checksum list of ``diffprobe data verify``.

The data layer sits above them and takes its functions' defaults from them (``data.manifest``'s split,
``data.synthetic``'s images); the command line reads them without loading numpy."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import Settings

__all__ = ["SETTINGS", "PartShare", "SplitConfig", "SynthConfig", "VerifyConfig"]

SETTINGS = ("natural", "balanced")
PartShare = Annotated[float, Field(gt=0, lt=1)]  # the share of each class a val or test part takes


@dataclass(frozen=True)
class SplitConfig(Settings):
    """How a dataset is split (``diffprobe split`` and every command that splits ``--data``): the setting
    (natural, or balanced to ``per_class`` images of each class), the val and test fractions per class, the seed."""

    setting: Literal[SETTINGS] = "natural"
    per_class: PositiveInt = 80
    val: PartShare = 0.15
    test: PartShare = 0.15
    seed: NonNegativeInt = 0


@dataclass(frozen=True)
class SynthConfig(Settings):
    """``diffprobe synth``: images per class, their side, a long-tailed class distribution, the seed."""

    n_per_class: PositiveInt = 80
    size: PositiveInt = 64
    long_tail: bool = False
    seed: NonNegativeInt = 0


@dataclass(frozen=True)
class VerifyConfig(Settings):
    """``diffprobe data verify``: whose packaged per-image checksum list a folder is checked against."""

    dataset: str = "ndsb"

"""How a dataset is split (``diffprobe split`` and every command that splits ``--data``): the setting
(natural, or balanced to ``per_class`` images of each class), the val and test fractions per class and the
seed. ``data.manifest.prepare_split`` takes the same parameters (the data layer sits below this package:
a test keeps its defaults equal to these)."""

from __future__ import annotations

from dataclasses import dataclass

SETTINGS = ("natural", "balanced")


@dataclass(frozen=True)
class SplitConfig:
    setting: str = "natural"
    per_class: int = 80
    val: float = 0.15
    test: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class SynthConfig:
    """``diffprobe synth``: images per class, their side, a long-tailed class distribution, the seed
    (``data.synthetic.generate`` takes the same defaults; a test keeps them equal)."""

    n_per_class: int = 80
    size: int = 64
    long_tail: bool = False
    seed: int = 0


@dataclass(frozen=True)
class VerifyConfig:
    """``diffprobe data verify``: whose packaged per-image checksum list a folder is checked against."""

    dataset: str = "ndsb"

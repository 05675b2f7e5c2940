"""The names every layer shares that need neither torch nor numpy: the error a user can fix, the
precision choices and how settings saved before ``precision`` existed read, and the data layer's settings
(the split, synthetic data, the checksum list: ``data.manifest`` and ``data.synthetic`` take their
functions' defaults from them, ``diffprobe.config.data`` shows them to the command line). ``utils``
re-exports the first three; the CLI and ``diffprobe.config`` import them from here, so that building the
parser (``diffprobe --help``) does not load torch."""

from dataclasses import dataclass


class DiffprobeError(Exception):
    """An error a user can fix: the message names the file and the fix."""


PRECISIONS = ("auto", "fp32", "bf16")


def legacy_precision(d: dict) -> dict:
    """Settings saved before ``precision`` existed carry ``bf16: true/false``: true was the only default
    then (not a choice), so it reads as ``auto``; false was an explicit opt-out and stays ``fp32``."""
    if "bf16" not in d:
        return d
    d = dict(d)
    flag = d.pop("bf16")
    d.setdefault("precision", "auto" if flag else "fp32")
    return d


# ---- the data layer's settings ----

SETTINGS = ("natural", "balanced")


@dataclass(frozen=True)
class SplitConfig:
    """How a dataset is split (``diffprobe split`` and every command that splits ``--data``): the setting
    (natural, or balanced to ``per_class`` images of each class), the val and test fractions per class, the seed."""

    setting: str = "natural"
    per_class: int = 80
    val: float = 0.15
    test: float = 0.15
    seed: int = 0


@dataclass(frozen=True)
class SynthConfig:
    """``diffprobe synth``: images per class, their side, a long-tailed class distribution, the seed."""

    n_per_class: int = 80
    size: int = 64
    long_tail: bool = False
    seed: int = 0


@dataclass(frozen=True)
class VerifyConfig:
    """``diffprobe data verify``: whose packaged per-image checksum list a folder is checked against."""

    dataset: str = "ndsb"

"""The settings of every stage as pydantic dataclasses (``base.Settings``): the one place their defaults and
bounds live.

``backbones`` (the architectures), ``data`` (the split, synthetic data, the checksum list; the data layer
takes its functions' defaults from them), ``pretrain`` (the trainers), ``features``
(``FeatureSpec``), ``probe`` (the heads and fusion) and ``evaluate`` (zero-shot and the field-use
commands). The stage modules that do the work (and load torch) import their dataclasses from here and
re-export them, so ``from diffprobe.pretrain.ddpm import PretrainConfig`` keeps working; the command line
reads its options' defaults from them (``default_of``) without loading torch, and the study config
(``workflows.study``) takes its sections' types, bounds and defaults from them. Nothing here imports torch,
numpy or a stage: ``config`` sits below every stage, the data layer included.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

__all__ = ["default_of", "show_default"]


def default_of(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (its factory's value where it has one)."""
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


def show_default(value: Any) -> str:
    """A default as the command line writes it: comma-separated for a tuple (``1,10,25``), a whole number
    without its decimal point (``4``, not ``4.0``), a small number in the shorter of its two forms (``1e-4``,
    ``0.03``), else ``str``."""
    if isinstance(value, (tuple, list)):
        return ",".join(show_default(v) for v in value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        plain = str(value)
        for digits in range(16):
            mantissa, exponent = f"{value:.{digits}e}".split("e")
            if float(f"{mantissa}e{exponent}") == value:
                short = f"{mantissa}e{int(exponent)}"
                return short if len(short) < len(plain) else plain
        return plain
    return str(value)

"""The data layer's settings: how a dataset is split (``diffprobe split`` and every command that splits
``--data``), the synthetic plankton of ``diffprobe synth``, the checksum list of ``diffprobe data verify``.
Defined in ``diffprobe.base``, below the data layer, whose functions take their defaults from them."""

from __future__ import annotations

from ..base import SETTINGS, SplitConfig, SynthConfig, VerifyConfig

__all__ = ["SETTINGS", "SplitConfig", "SynthConfig", "VerifyConfig"]

"""A tiny classifier bundle built once per session by the real pipeline (``tiny_pipeline``, tests/conftest.py).

synthetic images (8 classes x 40, 32 px) -> split -> 16 px -> the session's tiny DDPM U-Net (``tiny_run``: (16, 32),
40 steps of batch 32) -> features at t=10 -> linear probes -> bundle/. Test accuracy is well above chance (12.5%) but far from
perfect: enough for shifts and calibration to have measurable effects.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def field_run(tiny_pipeline, tiny_cfg, synth_dir, synth_split) -> dict:
    """``data`` (class folders), ``split`` (split.csv), ``bundle`` (bundle folder) and ``store`` (its features)."""
    out, _ = tiny_pipeline.probe(tiny_cfg, (10,), epochs=100, lr=1e-2, patience=50, seed=0)
    return {"root": out, "data": Path(synth_dir), "split": synth_split, "bundle": out / "bundle",
            "store": tiny_pipeline.store(tiny_cfg, (10,))}

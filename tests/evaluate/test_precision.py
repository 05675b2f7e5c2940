"""One function decides the numeric precision; auto picks bf16 only where the hardware runs it natively."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprobe import utils
from diffprobe.features.extract import FeatureSpec
from diffprobe.utils import DiffprobeError, legacy_precision, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, expected", [
    ({"capability": "AVX2", "amx": False, "avx512_bf16": False, "onednn_amx": True}, "fp32"),  # most laptops
    ({"capability": "AVX512", "amx": False, "avx512_bf16": True, "onednn_amx": True}, "fp32"),  # no AMX: slower
    ({"capability": "AVX512", "amx": True, "avx512_bf16": True, "onednn_amx": True}, "bf16"),  # Sapphire Rapids+
    ({"capability": "AVX512", "amx": True, "avx512_bf16": True, "onednn_amx": False}, "fp32"),  # AMX held back
])
def test_auto_picks_bf16_only_with_amx(monkeypatch, flags, expected):
    monkeypatch.setattr(utils, "cpu_features", lambda: flags)
    assert resolve_precision("auto", CPU) == expected
    assert utils.describe_precision("auto", CPU).startswith(expected)
    # an explicit choice is never overridden
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with torch.no_grad(), utils.autocast(CPU, "auto"):
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)


@pytest.mark.parametrize("isa, allowed", [("", True), ("ALL", True), ("avx512_core_amx", True), ("AVX2", False),
                                          ("AVX512_CORE_BF16", False)])
def test_onednn_isa_limit_is_read(monkeypatch, isa, allowed):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert utils.cpu_features.__wrapped__()["onednn_amx"] is allowed  # uncached: oneDNN too reads it once


def test_unknown_precision_is_refused():
    with pytest.raises(DiffprobeError, match="choose one of auto, fp32, bf16"):
        resolve_precision("fp16")
    with pytest.raises(DiffprobeError, match="unknown precision"):
        FeatureSpec(precision="half")


def test_old_settings_with_bf16_flag_keep_loading():
    # bf16: true was the only default before precision existed, so it reads as auto; false was a choice.
    assert legacy_precision({"bf16": True, "seed": 1}) == {"precision": "auto", "seed": 1}
    assert legacy_precision({"bf16": False}) == {"precision": "fp32"}
    assert FeatureSpec.from_dict({"timesteps": [1], "bf16": False}).precision == "fp32"
    from diffprobe.pretrain.ddpm import PretrainConfig

    cfg = PretrainConfig.from_dict({**{k: v for k, v in PretrainConfig(steps=10).to_dict().items() if k != "precision"},
                                    "bf16": True})
    assert cfg.precision == "auto"


def test_no_bf16_is_an_alias_of_fp32():
    from diffprobe.cli import build_parser

    p = build_parser()
    assert p.parse_args(["features", "--model", "m", "--data", "d", "--out", "o", "--no-bf16"]).precision == "fp32"
    assert p.parse_args(["predict", "--model", "m", "x", "--out", "o"]).precision == "auto"
    assert p.parse_args(["pretrain", "--data", "d", "--out", "o", "--precision", "bf16"]).precision == "bf16"


def test_bundle_predicts_the_same_in_fp32_and_bf16(field_run):
    """A bundle's predictions do not hinge on the precision it runs in. Stated tolerance (docs): probabilities
    within 0.01 on average and 0.1 at most, the top class changes on at most 5% of images (a tiny model
    trained 40 steps, whose classes are close)."""
    from diffprobe.probe.bundle import ClassifierBundle
    from diffprobe.data.manifest import Manifest
    from diffprobe.data.dataset import load_images

    b32 = ClassifierBundle.load(field_run["bundle"], precision="fp32")
    b16 = ClassifierBundle.load(field_run["bundle"], precision="bf16")
    arr = load_images(Manifest.load(field_run["split"]), b32.preprocess, progress=False)
    p32, p16 = b32.logits(arr.images), b16.logits(arr.images)
    p32, p16 = (np.exp(p - p.max(1, keepdims=True)) for p in (p32, p16))
    p32, p16 = p32 / p32.sum(1, keepdims=True), p16 / p16.sum(1, keepdims=True)
    diff = np.abs(p32 - p16)
    assert diff.mean() < 0.01 and diff.max() < 0.1
    assert (p32.argmax(1) != p16.argmax(1)).mean() <= 0.05
    assert b32.feature_spec().precision == "fp32" and b16.feature_spec().precision == "bf16"


def test_store_records_the_precision_used(tiny_store):
    assert tiny_store.meta["spec"]["precision"] in ("fp32", "bf16")

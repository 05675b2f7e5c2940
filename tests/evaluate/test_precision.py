"""One function decides the numeric precision; auto picks bf16 only where the hardware runs it natively."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprobe import utils
from diffprobe.features.extract import FeatureSpec
from diffprobe.utils import DiffprobeError, legacy_precision, resolve_precision

CPU = torch.device("cpu")


NO_BF16 = {"capability": "AVX2", "amx": False, "avx512_bf16": False, "onednn_amx": True}  # most laptops
BF16_NO_AMX = {"capability": "AVX512", "amx": False, "avx512_bf16": True, "onednn_amx": True}
AMX = {"capability": "AVX512", "amx": True, "avx512_bf16": True, "onednn_amx": True}


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """auto's measurement with given timings, cached in a fresh folder; returns the list of measurements made."""
    calls = []
    monkeypatch.setenv("DIFFPROBE_CACHE", str(tmp_path))
    monkeypatch.delenv(utils.AUTO_PRECISION_ENV, raising=False)
    utils.measured_cpu_precision.cache_clear()

    def use(flags, times=None):
        monkeypatch.setattr(utils, "cpu_features", lambda: flags)
        monkeypatch.setattr(utils, "time_precisions", lambda: calls.append(times) or dict(times))
        utils.measured_cpu_precision.cache_clear()
        return calls

    yield use
    utils.measured_cpu_precision.cache_clear()


@pytest.mark.parametrize("flags, times, expected", [
    (NO_BF16, None, "fp32"),  # emulated bf16: nothing to measure
    (BF16_NO_AMX, {"fp32": 1.0, "bf16": 0.55}, "bf16"),  # an AMD EPYC: bf16 1.8x faster
    (BF16_NO_AMX, {"fp32": 1.0, "bf16": 1.25}, "fp32"),  # an Intel CPU with the same flag: 0.8x
    (AMX, {"fp32": 1.0, "bf16": 0.5}, "bf16"),
    (AMX, {"fp32": 1.0, "bf16": 0.95}, "fp32"),  # within 10%: fp32, the more exact, wins
])
def test_auto_picks_the_precision_it_measures_faster(measuring, flags, times, expected):
    calls = measuring(flags, times)
    assert resolve_precision("auto", CPU) == expected
    assert utils.describe_precision("auto", CPU).startswith(expected)
    assert len(calls) == (0 if times is None else 1)
    # an explicit choice is never overridden
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with torch.no_grad(), utils.autocast(CPU, "auto"):
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == (torch.bfloat16 if expected == "bf16" else torch.float32)


def test_the_measurement_is_cached_per_machine_and_can_be_overridden(measuring, monkeypatch, tmp_path):
    calls = measuring(BF16_NO_AMX, {"fp32": 1.0, "bf16": 0.5})
    assert resolve_precision("auto", CPU) == "bf16"
    assert "1.8x" in utils.describe_precision("auto", CPU) or "2.00x" in utils.describe_precision("auto", CPU)
    utils.measured_cpu_precision.cache_clear()  # a new process: read from disk, not measured again
    assert resolve_precision("auto", CPU) == "bf16" and len(calls) == 1
    assert (tmp_path / "precision.json").is_file()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # another kernel limit is another machine: measured anew
    utils.measured_cpu_precision.cache_clear()
    resolve_precision("auto", CPU)
    assert len(calls) == 2
    monkeypatch.setenv(utils.AUTO_PRECISION_ENV, "fp32")
    utils.measured_cpu_precision.cache_clear()
    assert resolve_precision("auto", CPU) == "fp32" and len(calls) == 2
    assert utils.AUTO_PRECISION_ENV in utils.describe_precision("auto", CPU)
    monkeypatch.setenv(utils.AUTO_PRECISION_ENV, "fp16")
    utils.measured_cpu_precision.cache_clear()
    with pytest.raises(DiffprobeError, match="fp32 or bf16"):
        resolve_precision("auto", CPU)


def test_time_precisions_times_both():
    t = utils.time_precisions(repeats=1)
    assert set(t) == {"fp32", "bf16"} and all(v > 0 for v in t.values())


@pytest.mark.parametrize("isa, allowed", [("", True), ("ALL", True), ("avx512_core_amx", True), ("AVX2", False),
                                          ("AVX512_CORE_BF16", False)])
def test_onednn_isa_limit_is_read(monkeypatch, isa, allowed):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert utils.cpu_features.__wrapped__()["onednn_amx"] is allowed  # uncached: oneDNN too reads it once


def test_unknown_precision_is_refused():
    with pytest.raises(DiffprobeError, match="choose one of auto, fp32, bf16"):
        resolve_precision("fp16")
    with pytest.raises(DiffprobeError, match="FeatureSpec.precision: Input should be 'auto', 'fp32' or 'bf16'"):
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
    within 0.01 on average and 0.1 at most; the top class changes only where fp32's two best classes are within
    0.1 of each other (a tiny model trained 40 steps, whose classes are close), on at most a tenth of the images."""
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
    flipped = p32.argmax(1) != p16.argmax(1)
    top2 = np.sort(p32, axis=1)[:, -2:]
    assert (top2[flipped, 1] - top2[flipped, 0] < 0.1).all() and flipped.mean() <= 0.1
    assert b32.feature_spec().precision == "fp32" and b16.feature_spec().precision == "bf16"


def test_store_records_the_precision_used(tiny_store):
    assert tiny_store.meta["spec"]["precision"] in ("fp32", "bf16")

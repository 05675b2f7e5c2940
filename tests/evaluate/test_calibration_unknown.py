"""Calibration (temperature) and unknown rejection (thresholds, AUROC) of bundles."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from diffprobe import ClassifierBundle
from diffprobe.cli import main
from diffprobe.evaluate.unknown import (
    flag_unknown,
    known_scores,
    openset_auroc,
    shift_warning,
    unknown_thresholds,
)
from diffprobe.workflows.evaluate import evaluate_bundle


def test_shift_warning_fires_on_unfamiliar_images_only():
    rng = np.random.default_rng(0)
    confident = rng.normal(size=(400, 5)) + np.eye(5)[rng.integers(0, 5, 400)] * 6  # like val: one clear class
    meta = {"temperature": 1.0, "unknown": unknown_thresholds(confident, 1.0, 0.95)}
    assert meta["unknown"]["val_mean_confidence"] > 0.8
    assert shift_warning(confident[:200], meta) is None  # the same kind of data
    unsure = rng.normal(size=(200, 5))  # no class stands out: a new instrument
    msg = shift_warning(unsure, meta)
    assert msg and "flagged unknown" in msg and "mean confidence" in msg and "adapt" in msg
    assert shift_warning(unsure[:10], meta) is None  # too few images to tell
    assert shift_warning(unsure, {"temperature": 1.0}) is None  # a bundle without thresholds


def test_run_probe_stores_val_confusion_and_unknown_thresholds(field_run):
    meta = json.loads((field_run["bundle"] / "bundle.json").read_text())
    cm = np.array(meta["val_confusion"])
    assert cm.shape == (8, 8) and cm.sum() == 8 * 6  # 6 val images per class
    assert meta["unknown"]["accept"] == 0.95 and set(meta["unknown"]["thresholds"]) == {"msp", "energy"}
    assert 1 / 8 <= meta["unknown"]["thresholds"]["msp"] <= 1
    ClassifierBundle.load(field_run["bundle"])  # still a valid bundle


@pytest.fixture
def overconfident(field_run, tmp_path):
    """The tiny bundle with its logits multiplied by 10 and temperature reset to 1: badly overconfident."""
    b = tmp_path / "bundle"
    shutil.copytree(field_run["bundle"], b)
    t = load_file(b / "probe.safetensors")
    t["weight"], t["bias"] = t["weight"] * 10, t["bias"] * 10
    save_file(t, b / "probe.safetensors")
    meta = json.loads((b / "bundle.json").read_text())
    meta["temperature"] = 1.0
    for k in ("unknown", "val_confusion"):
        meta.pop(k)
    (b / "bundle.json").write_text(json.dumps(meta))
    return b


def test_calibrate_fixes_an_overconfident_bundle(field_run, overconfident, tmp_path, capsys):
    before = evaluate_bundle(overconfident, field_run["split"], tmp_path / "before", part="test", progress=False)
    assert before["calibration"]["ece_before"] == pytest.approx(before["calibration"]["ece_after"])  # T = 1
    assert "flagged_unknown_share" not in before and "note" in before["abundance"]

    assert main(["calibrate", "--model", str(overconfident), "--data", str(field_run["split"])]) == 0
    assert "temperature" in capsys.readouterr().out
    meta = json.loads((overconfident / "bundle.json").read_text())
    assert meta["temperature"] > 5  # undoes most of the x10
    assert np.array(meta["val_confusion"]).sum() == 48 and "msp" in meta["unknown"]["thresholds"]
    assert meta["calibration"]["ece_after"] < meta["calibration"]["ece_before"]

    after = evaluate_bundle(overconfident, field_run["split"], tmp_path / "after", part="test", progress=False)
    c = after["calibration"]
    assert c["ece_after"] < c["ece_before"] - 0.1  # on new (test) data, not only on val
    assert after["accuracy"] == pytest.approx(before["accuracy"])  # temperature never changes the ranking
    assert "acc" in after["abundance"]["error"]


def test_thresholds_accept_the_target_share_of_val():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(400, 5)) * 3
    unk = unknown_thresholds(logits, temperature=1.5, accept=0.9)
    meta = {"temperature": 1.5, "unknown": unk}
    for score in ("msp", "energy"):
        accepted = ~flag_unknown(logits, meta, score=score)
        assert 0.9 <= accepted.mean() <= 0.9 + 2 / 400
    assert flag_unknown(logits, {"temperature": 1.0}) is None


def test_scores_and_auroc():
    logits = np.array([[10.0, 0.0], [0.1, 0.0]])
    s = known_scores(logits)
    assert s["msp"][0] > s["msp"][1] and s["energy"][0] > s["energy"][1]
    assert openset_auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert openset_auroc(np.array([0.1]), np.array([0.9])) == 0.0
    assert np.isnan(openset_auroc(np.array([0.5]), np.array([])))



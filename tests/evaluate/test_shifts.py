"""Instrument-like shifts: the perturbations themselves, and the suite on a tiny bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffprobe.cli import main
from diffprobe.data.preprocess import Preprocess, preprocess
from diffprobe.evaluate.shifts import RESHAPING, SEVERITIES, SHIFTS, apply_shift
from diffprobe.utils import DiffprobeError


@pytest.fixture
def organism():
    """A light 40 x 30 crop with a dark ellipse: float greyscale in [0, 1] like read_image returns."""
    yy, xx = np.mgrid[0:40, 0:30]
    img = np.full((40, 30), 0.9, np.float32)
    img[((yy - 20) / 12) ** 2 + ((xx - 15) / 7) ** 2 < 1] = 0.2
    return img


@pytest.mark.parametrize("shift", [s for s in SHIFTS if s not in RESHAPING])
def test_shift_keeps_shape_range_and_grows_with_severity(organism, shift):
    out = {v: apply_shift(organism, shift, v, seed=0, key="a.png") for v in SEVERITIES}
    for img in out.values():
        assert img.shape == organism.shape and img.dtype == np.float32
        assert img.min() >= 0 and img.max() <= 1
    change = [np.abs(out[v] - organism).mean() for v in SEVERITIES]
    assert change[0] > 0
    assert change[-1] > 1.5 * change[0]  # severity 5 departs much more than severity 1
    np.testing.assert_array_equal(out[3], apply_shift(organism, shift, 3, seed=0, key="a.png"))  # seeded


def test_margin_frames_the_organism_loosely_and_the_crop_undoes_it(organism):
    out = {v: apply_shift(organism, "margin", v, seed=0, key="a.png") for v in SEVERITIES}
    assert [img.shape for img in out.values()] == [(round(40 * f), round(30 * f)) for f in (1.25, 1.5, 2, 2.5, 3)]
    assert all((img < 0.5).sum() == (organism < 0.5).sum() for img in out.values())  # the organism, whole
    loose, cropped = Preprocess(size=32), Preprocess(size=32, crop=True)
    reference = preprocess(organism, cropped).astype(int)
    # Cropped to the organism, a loosely framed crop reaches the model nearly as the original does.
    assert np.abs(preprocess(out[5], cropped) - reference).mean() < 0.3 * np.abs(
        preprocess(out[5], loose) - reference).mean()


@pytest.mark.parametrize("field", [0.9, 0.1])
def test_overlay_marks_stand_out_from_the_field(organism, field):
    img = organism if field > 0.5 else 1.0 - organism  # light field (NDSB) and dark field (dark-field cameras)
    out = apply_shift(img, "overlay", 3, seed=0, key="a.png")
    marked = np.abs(out - img) > 0.5
    assert marked.sum() >= 0.02 * img.size  # the bar and the label are drawn in the opposite tone to the field
    assert np.all(np.abs(out[marked] - field) > 0.5)


def test_random_shifts_depend_on_seed_and_file(organism):
    a = apply_shift(organism, "noise", 2, seed=0, key="a.png")
    assert not np.array_equal(a, apply_shift(organism, "noise", 2, seed=1, key="a.png"))
    assert not np.array_equal(a, apply_shift(organism, "noise", 2, seed=0, key="b.png"))


def test_contrast_moves_towards_background(organism):
    out = apply_shift(organism, "contrast", 5)
    assert out.max() - out.min() < 0.3 * (organism.max() - organism.min())
    assert out[0, 0] == pytest.approx(0.9)


def test_bad_shift_or_severity(organism):
    with pytest.raises(DiffprobeError, match="unknown shift"):
        apply_shift(organism, "fog", 1)
    with pytest.raises(DiffprobeError, match="severity"):
        apply_shift(organism, "noise", 6)


def test_shift_suite_reports_lower_accuracy_under_a_strong_shift(field_run, predictions, tmp_path, capsys):
    out = tmp_path / "shift"
    assert main(["shift", "--model", str(field_run["bundle"]), "--data", str(field_run["split"]), "--out", str(out),
                 "--shifts", "contrast,defocus", "--severities", "1,5"]) == 0
    r = json.loads((out / "shift.json").read_text())
    bundle = json.loads((field_run["bundle"] / "bundle.json").read_text())
    # The clean row is the test images read again: the probe's classes image by image (one borderline image may
    # flip under bf16), and the accuracy of those predictions.
    reread, labels = predictions.reread(field_run["bundle"], field_run["split"])
    flips = predictions.flips(reread, predictions.from_store(field_run["bundle"], field_run["store"]))
    assert r["clean"]["accuracy"] == pytest.approx((reread == labels).mean(), abs=1e-9)
    assert abs(r["clean"]["accuracy"] - bundle["metrics"]["test_accuracy"]) <= flips / len(labels) + 1e-9
    assert r["n_images"] == 8 * 6 and r["n_skipped"] == 0
    assert set(r["shifts"]) == {"contrast", "defocus"}
    assert [row["severity"] for row in r["shifts"]["contrast"]] == [1, 5]
    worst = r["shifts"]["contrast"][-1]
    assert worst["accuracy"] < r["clean"]["accuracy"] - 0.15 and worst["macro_f1"] < r["clean"]["macro_f1"]
    assert r["shifts"]["defocus"][-1]["accuracy"] < r["clean"]["accuracy"]
    for name in ("shift.md", "robustness.png", "shift_examples.png"):
        assert (out / name).stat().st_size > 0
    assert "| contrast |" in (out / "shift.md").read_text()
    assert "clean accuracy" in capsys.readouterr().out

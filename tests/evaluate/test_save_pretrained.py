"""ClassifierBundle.save_pretrained: a loaded bundle written to a new folder loads back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from diffprobe import ClassifierBundle
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.export_model import export_model


def _images(field_run, n=6):
    return sorted((field_run["data"] / "spiny_long").glob("*.png"))[:n] + \
        sorted((field_run["data"] / "chain_five").glob("*.png"))[:n]


def _dtypes(path):
    with safe_open(path, "pt") as f:
        return {f.get_tensor(k).dtype for k in f.keys()}


def test_save_pretrained_round_trips_with_identical_predictions(field_run, tmp_path):
    bundle = ClassifierBundle.from_pretrained(field_run["bundle"])
    bundle.meta["temperature"] = 1.7  # a change made in memory is saved too
    out = bundle.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == ["backbone", "bundle.json", "probe.safetensors"]
    assert not list(tmp_path.glob(".*partial"))
    again = ClassifierBundle.from_pretrained(out)
    assert again.meta == bundle.meta and again.classes == bundle.classes and again.temperature == 1.7
    files = _images(field_run)
    np.testing.assert_array_equal(again.predict_proba(files), bundle.predict_proba(files))
    assert again.predict(files) == bundle.predict(files)


def test_save_pretrained_refuses_to_overwrite_by_accident(field_run, tmp_path):
    bundle = ClassifierBundle.from_pretrained(field_run["bundle"])
    with pytest.raises(DiffprobeError, match="loaded from"):
        bundle.save_pretrained(field_run["bundle"])
    with pytest.raises(DiffprobeError, match="loaded from"):
        bundle.save_pretrained(field_run["bundle"].parent)  # a folder holding the bundle
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(DiffprobeError, match="not empty"):
        bundle.save_pretrained(tmp_path / "taken")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    bundle.save_pretrained(tmp_path / "taken", overwrite=True)
    assert not (tmp_path / "taken" / "notes.txt").exists() and (tmp_path / "taken" / "bundle.json").is_file()


def test_save_pretrained_keeps_an_exported_models_fp16_weights(field_run, tmp_path):
    export_model(field_run["bundle"], tmp_path / "model", head_fp16=True, progress=False)
    model = ClassifierBundle.from_pretrained(tmp_path / "model")
    out = model.save_pretrained(tmp_path / "copy")
    assert _dtypes(out / "probe.safetensors") == {torch.float16}
    (weights,) = (out / "backbone").rglob("*.safetensors")
    assert torch.float16 in _dtypes(weights)
    files = _images(field_run, 3)
    np.testing.assert_array_equal(ClassifierBundle.from_pretrained(out).predict_proba(files),
                                  model.predict_proba(files))

"""bundle.json's schema: every field checked with the file and the fix named, format 1 migrated on load."""

from __future__ import annotations

import json
import shutil

import pytest

from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.bundle_json import BundleJSON, EnsembleJSON, check_description, migrated
from diffprobe.utils import DiffprobeError

FORMAT_1 = {"format": 1, "classes": ["a", "b"], "block": "mid", "timestep": 10, "image_size": 32,
            "preprocess": {"size": 32}, "feature_spec": {}, "temperature": 1.5,
            "metrics": {"test_accuracy": 0.5, "test_macro_f1": 0.4, "note": "kept"}}


def test_format_1_is_migrated_to_format_2_and_keeps_what_it_does_not_name(tmp_path):
    meta = migrated(FORMAT_1)
    assert (meta["format"], meta["pairs"], meta["metadata"], meta["head"]) == (2, [["mid", 10]], [], "linear")
    assert meta["metrics"]["note"] == "kept" and FORMAT_1["format"] == 1, "a new dict; the input is unchanged"
    check_description(meta, BundleJSON, tmp_path / "bundle.json")


@pytest.mark.parametrize("change, message", [
    ({"format": 9}, r"field 'format': Value error, bundle format 9 is not supported .* upgrade diffprobe"),
    ({"timestep": "ten"}, r"field 'timestep': Input should be a valid integer, got 'ten'; re-create the bundle"),
    ({"temperature": 0.0}, r"field 'temperature': Input should be greater than 0"),
    ({"classes": []}, r"field 'classes': List should have at least 1 item"),
    ({"head": "svm"}, r"field 'head': Input should be 'linear' or 'mlp'"),
    ({"pairs": [["mid"]]}, r"missing field 'pairs.0.1'"),
    ({"metadata": ["log_height", "wingspan"]}, r"field 'metadata': Value error, .*wingspan"),
    ({"metrics": {"test_accuracy": True, "test_macro_f1": 0.4}}, r"field 'metrics.test_accuracy'"),
])
def test_a_bad_field_is_named_with_the_file_and_the_fix(tmp_path, change, message):
    where = tmp_path / "bundle.json"
    with pytest.raises(DiffprobeError, match=message) as e:
        check_description({**migrated(FORMAT_1), **change}, BundleJSON, where)
    assert str(e.value).startswith(f"{where}: ")


def test_missing_fields_and_non_objects_are_refused(tmp_path):
    with pytest.raises(DiffprobeError, match="missing field 'preprocess'; the bundle is incomplete"):
        check_description({k: v for k, v in migrated(FORMAT_1).items() if k != "preprocess"}, BundleJSON, tmp_path)
    with pytest.raises(DiffprobeError, match="not a bundle description"):
        check_description([1, 2], BundleJSON, tmp_path)


def test_an_ensemble_needs_two_members_and_may_not_be_measured_yet(tmp_path):
    ensemble = {"format": 3, "members": ["crop", "frame"], "classes": ["a"], "image_size": 32, "temperature": 1.0,
                "metrics": {"test_accuracy": None, "test_macro_f1": None}}
    check_description(ensemble, EnsembleJSON, tmp_path)
    with pytest.raises(DiffprobeError, match="field 'members': List should have at least 2 items"):
        check_description({**ensemble, "members": ["crop"]}, EnsembleJSON, tmp_path)
    with pytest.raises(DiffprobeError, match="field 'format': Input should be 3"):
        check_description({**ensemble, "format": 2}, EnsembleJSON, tmp_path)


def test_a_format_1_bundle_on_disk_loads_with_its_one_pair(tiny_probe, tmp_path):
    out, _ = tiny_probe
    old = tmp_path / "bundle"
    shutil.copytree(out / "bundle", old)
    meta = json.loads((old / "bundle.json").read_text())
    if meta["head"] != "linear" or len(meta["pairs"]) != 1:
        pytest.skip("the fixture's bundle is not a one-pair linear bundle")
    for k in ("pairs", "metadata", "head"):
        meta.pop(k, None)
    (old / "bundle.json").write_text(json.dumps({**meta, "format": 1}))
    bundle = ClassifierBundle.load(old)
    assert bundle.meta["format"] == 2 and bundle.pairs == [(meta["block"], meta["timestep"])]

"""Exporting a bundle as a model folder to ship: fp16 weights, the split beside it, its own test numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from diffprobe import ClassifierBundle
from diffprobe.cli import main
from diffprobe.data.manifest import Manifest
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.evaluate import evaluate_bundle
from diffprobe.workflows.export_model import export_model


def test_the_exported_split_names_the_data_folder_portably(field_run, tmp_path, monkeypatch):
    data = Manifest.load(field_run["split"]).root.resolve()
    monkeypatch.setenv("DIFFPROBE_DATA", str(data.parent))
    out = tmp_path / "portable"
    assert main(["export", str(field_run["bundle"]), "--out", str(out), "--split", str(field_run["split"])]) == 0
    sidecar = json.loads((out / "split.json").read_text())
    assert sidecar["root"] == f"$DIFFPROBE_DATA/{data.name}"
    assert str(data.parent) not in json.dumps(sidecar), "no machine's folder in a shipped model"


def test_export_writes_a_small_model_that_reproduces_its_test_metrics(field_run, predictions, tmp_path):
    out = tmp_path / "models" / "tiny"
    out.mkdir(parents=True)
    (out / "README.md").write_text("# card\n")
    assert main(["export", str(field_run["bundle"]), "--out", str(out), "--split", str(field_run["split"])]) == 0
    weights = next((out / "backbone").rglob("*.safetensors"))
    with safe_open(weights, "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    src = next((field_run["bundle"] / "backbone").rglob("*.safetensors"))
    assert weights.stat().st_size < 0.6 * src.stat().st_size
    assert (out / "README.md").read_text() == "# card\n"  # the model card is kept
    # The split moved with the model: same images, root stored relative to the folder.
    split = Manifest.load(out / "split.csv")
    assert split.paths == Manifest.load(field_run["split"]).paths
    assert not json.loads((out / "split.json").read_text())["root"].startswith("/")
    card = json.loads((out / "test_metrics.json").read_text())
    assert json.loads((out / "test_report" / "metrics.json").read_text())["accuracy"] == card["accuracy"]
    assert (out / "test_report" / "report.md").read_text().startswith(f"# Evaluation of {out} on {out}/split.csv")
    assert card["n_images"] == int((split.split_mask("test")).sum())
    again = evaluate_bundle(out, out / "split.csv", tmp_path / "eval", part="test", progress=False)
    assert again["accuracy"] == card["accuracy"]
    fp32 = evaluate_bundle(field_run["bundle"], field_run["split"], tmp_path / "eval32", part="test", progress=False)
    assert abs(card["accuracy"] - fp32["accuracy"]) <= 0.05  # fp16 rounding moves a few borderline images at most
    assert ClassifierBundle.load(out).classes == ClassifierBundle.load(field_run["bundle"]).classes
    # Without the fp16 cast the exported model is the bundle: its test accuracy is the probe's own.
    same = tmp_path / "models" / "fp32"
    assert main(["export", str(field_run["bundle"]), "--out", str(same), "--split", str(field_run["split"]),
                 "--fp32"]) == 0
    card32 = json.loads((same / "test_metrics.json").read_text())
    assert card32["bundle_test_accuracy"] == json.loads((field_run["bundle"] / "bundle.json").read_text())[
        "metrics"]["test_accuracy"]
    # The same weights read the same images as evaluate reads them: the same numbers.
    assert card32["accuracy"] == pytest.approx(fp32["accuracy"], abs=1e-9)
    # Against the probe's stored features, image by image: one borderline image may flip under bf16.
    reread, labels = predictions.reread(same, same / "split.csv")
    flips = predictions.flips(reread, predictions.from_store(field_run["bundle"], field_run["store"]))
    assert abs(card32["accuracy"] - card32["bundle_test_accuracy"]) <= flips / len(labels) + 1e-9


def test_export_refuses_to_replace_a_model_without_overwrite(field_run, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["export", str(field_run["bundle"]), "--out", str(out), "--fp32"]) == 0
    assert main(["export", str(field_run["bundle"]), "--out", str(out)]) != 0
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(DiffprobeError, match="not a classifier bundle|bundle.json"):
        export_model(tmp_path / "nothing", tmp_path / "m2")
    assert not (tmp_path / "m2").exists()
    assert main(["export", str(field_run["bundle"]), "--out", str(out), "--overwrite"]) == 0
    assert not list(tmp_path.glob(".m.*"))  # no partial folder left behind


def test_export_can_store_the_head_in_fp16(field_run, tmp_path):
    out = tmp_path / "half-head"
    assert main(["export", str(field_run["bundle"]), "--out", str(out), "--fp32", "--fp16-head"]) == 0
    with safe_open(out / "probe.safetensors", "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    assert (out / "probe.safetensors").stat().st_size < 0.6 * (field_run["bundle"] / "probe.safetensors").stat().st_size
    half, full = ClassifierBundle.load(out, precision="fp32"), ClassifierBundle.load(field_run["bundle"], precision="fp32")
    x = np.random.default_rng(0).normal(size=(50, len(full.head.mean))).astype(np.float32)
    exact, rounded = full.head.logits(x), half.head.logits(x)
    # fp16 keeps about three significant digits of each weight: the logits move by a small share of their range
    assert np.abs(rounded - exact).max() < 0.01 * np.ptp(exact)
    assert (rounded.argmax(1) == exact.argmax(1)).mean() >= 0.95

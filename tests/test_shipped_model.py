"""The plankton model shipped in models/ndsb: loads, classifies, and its card's test numbers are real."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from diffprobe import ClassifierBundle
from diffprobe.evaluate.crossdata import evaluate_bundle
from diffprobe.evaluate.predict import predict_files

MODEL = Path(__file__).resolve().parents[1] / "models" / "ndsb"


def test_shipped_model_is_small_safetensors_and_classifies_images(tmp_path):
    weights = MODEL / "backbone" / "unet" / "diffusion_pytorch_model.safetensors"
    with safe_open(weights, "pt") as f:  # fp32: fp16 rounding flipped 7% of this probe's predictions (card)
        assert len({str(f.get_tensor(k).dtype) for k in f.keys()}) == 1
    assert sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file() and p.name != "split.csv") <= 25 * 2**20
    bundle = ClassifierBundle.load(MODEL)
    assert len(bundle.classes) == 121
    rng = np.random.default_rng(0)
    for i in range(3):  # light background, dark blob: the look of a shadowgraph crop
        img = np.full((60, 50), 230, np.uint8)
        img[20 + i:40, 15:35 - i] = rng.integers(20, 90, (20 - i, 20 - i))
        Image.fromarray(img).save(tmp_path / f"crop{i}.png")
    r = predict_files(MODEL, [tmp_path], tmp_path / "preds.csv", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "preds.csv")))
    assert r["n_images"] == len(rows) == 3
    assert all(row["label"] in bundle.classes and 0 < float(row["probability"]) <= 1 for row in rows)


@pytest.mark.slow
def test_shipped_model_reproduces_its_card_on_the_ndsb_test_split(ndsb_dir, tmp_path):
    card = json.loads((MODEL / "test_metrics.json").read_text())
    r = evaluate_bundle(MODEL, MODEL / "split.csv", tmp_path, part="test", progress=False)
    assert r["n_images"] == card["n_images"] == 3619
    assert r["accuracy"] == pytest.approx(card["accuracy"], abs=0.003)
    assert r["macro_f1"] == pytest.approx(card["macro_f1"], abs=0.005)


def test_shipped_model_is_the_recipe_s_classifier():
    """The card's test numbers are those of the fused head it was exported from, refit on train + val
    (benchmarks/results/ndsb_recipe_shape/fusion.json), and the bundle reads that head's pairs from images cut
    to their organism, as its features were."""
    card = json.loads((MODEL / "test_metrics.json").read_text())
    fusion = json.loads((MODEL.parents[1] / "benchmarks" / "results" / "ndsb_recipe_shape" / "fusion.json").read_text())
    assert card["bundle_test_accuracy"] == pytest.approx(fusion["refit"]["test_accuracy"], abs=1e-6)
    # evaluate recomputes the features and reads the head stored in fp16: a prediction or two may differ
    assert card["accuracy"] == pytest.approx(fusion["refit"]["test_accuracy"], abs=1e-3)
    # evaluate averages F1 over the classes of the data or predictions; fuse over the same images' labels and
    # predictions too, but rounding in the per-class sums may differ in the last digits
    assert card["macro_f1"] == pytest.approx(fusion["refit"]["test_macro_f1"], abs=1e-3)
    bundle = json.loads((MODEL / "bundle.json").read_text())
    assert bundle["pairs"] == [[p["block"], p["timestep"]] for p in fusion["best"]["pairs"]]
    assert bundle["head"] == "mlp" and bundle["metadata"] and bundle["preprocess"]["crop"]
    # The head learned from train + val: its class counts are those of both parts of the split.
    assert sum(bundle["train_class_counts"]) == fusion["refit"]["images"]

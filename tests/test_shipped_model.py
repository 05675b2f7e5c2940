"""The plankton model shipped in models/ndsb: loads, classifies, and reproduces its stored test predictions."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from diffprobe import ClassifierBundle
from diffprobe.evaluate.predict import predict_files, predict_paths

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


# Per-image predictions of a seeded subset of the test split, stored beside the model in fp32 by
# `python benchmarks/shipped_model.py subset` (the whole split against the card: `... shipped_model.py full`,
# about 12 min on 2 cores, a benchmark rather than a test).
SUBSET = MODEL / "test_predictions_subset.csv"
# bf16 (what auto picks where it is faster) against the fp32 reference: on these 240 images bf16 changed the
# class of 1 and the top probability by 0.002 (median), 0.010 (95th percentile), 0.018 (at most); on the whole
# split bf16 and fp32 differ by 0.16 points of accuracy (test_metrics.json vs test_metrics_fp32.json). The bounds
# leave room for that; a changed model, head or preprocessing moves far more.
MIN_AGREEMENT = 0.98
MAX_MEDIAN_DP = 0.02
MAX_P95_DP = 0.05


def _stored_subset() -> list[dict]:
    return list(csv.DictReader(open(SUBSET, newline="")))


def test_stored_subset_predictions_are_test_images_of_the_split_and_match_the_card():
    rows = _stored_subset()
    split = {r["path"]: r for r in csv.DictReader(open(MODEL / "split.csv", newline=""))}
    classes = json.loads((MODEL / "bundle.json").read_text())["classes"]
    assert 200 <= len(rows) == len({r["path"] for r in rows})
    assert all(split[r["path"]]["split"] == "test" and split[r["path"]]["label"] == r["label"] for r in rows)
    assert {r["precision"] for r in rows} == {"fp32"}
    assert all(r["predicted"] in classes and 0 < float(r["probability"]) <= 1 for r in rows)
    # The subset's accuracy is a sample of the card's (fp32): within 4 binomial standard deviations of it.
    card = json.loads((MODEL / "test_metrics_fp32.json").read_text())
    acc = np.mean([r["predicted"] == r["label"] for r in rows])
    assert abs(acc - card["accuracy"]) < 4 * np.sqrt(card["accuracy"] * (1 - card["accuracy"]) / len(rows))


@pytest.mark.slow
@pytest.mark.ndsb
def test_shipped_model_reproduces_its_stored_predictions_on_a_seeded_test_subset(ndsb_dir):
    rows = _stored_subset()
    bundle = ClassifierBundle.load(MODEL)  # precision auto: bf16 where it is faster, else fp32
    got = predict_paths(bundle, [ndsb_dir / r["path"] for r in rows])
    assert [Path(g["path"]) for g in got] == [ndsb_dir / r["path"] for r in rows]  # every image read
    agree = np.mean([g["label"] == r["predicted"] for g, r in zip(got, rows, strict=True)])
    dp = np.abs([float(g["probability"]) - float(r["probability"]) for g, r in zip(got, rows, strict=True)])
    assert agree >= MIN_AGREEMENT, f"{agree:.1%} of {len(rows)} images keep their stored class"
    assert np.median(dp) < MAX_MEDIAN_DP, f"median |p - p_stored| = {np.median(dp):.3f}"
    assert np.quantile(dp, 0.95) < MAX_P95_DP, f"95th percentile of |p - p_stored| = {np.quantile(dp, 0.95):.3f}"


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

import json

import numpy as np
import pytest
from scipy.special import softmax

from diffprobe.probe import ClassifierBundle, GridProbe
from diffprobe.probe.calibration import expected_calibration_error, fit_temperature
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.probe import run_probe


def test_results_json_follows_the_schema(tiny_probe):
    out, r = tiny_probe
    data = json.loads((out / "results.json").read_text())
    assert data["n_classes"] == 8 and 0 < data["chance_accuracy"] < 1
    assert len(data["grid"]) == 15
    for row in data["grid"] + [data["best"]]:
        assert isinstance(row["block"], str) and isinstance(row["timestep"], int)
        for k in ("val_accuracy", "test_accuracy", "test_macro_f1"):
            assert isinstance(row[k], float) and 0 <= row[k] <= 1
    for f in ("report.md", "heatmap.png", "confusion.png", "bundle/bundle.json", "bundle/probe.safetensors"):
        assert (out / f).is_file()


def test_best_pair_is_chosen_on_val_and_beats_chance_clearly(tiny_probe):
    _, r = tiny_probe
    best_val = max(g["val_accuracy"] for g in r["grid"])
    assert r["best"]["val_accuracy"] == best_val
    assert r["best"]["test_accuracy"] > 2 * r["chance_accuracy"]


def test_batched_probe_matches_a_reference_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 10)) * 2
    def sample(n):
        y = rng.integers(0, 4, n)
        return (centers[y] + rng.normal(size=(n, 10))).astype(np.float32), y
    (xtr, ytr), (xva, yva), (xte, yte) = sample(400), sample(200), sample(400)
    noise = rng.normal(size=(400, 16)).astype(np.float32)  # a second, useless feature set of another width
    heads = GridProbe(epochs=60, seed=0).fit([xtr, noise], ytr, [xva, rng.normal(size=(200, 16))], yva, 4)
    ours = (heads[0].logits(xte).argmax(1) == yte).mean()
    ref = LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
    assert ours >= ref - 0.02
    assert (heads[1].logits(rng.normal(size=(400, 16))).argmax(1) == yte).mean() < 0.4


def test_whitening_handles_rank_deficient_and_constant_features():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(6, 8)) * 1.5
    mix = rng.normal(size=(8, 24)) * np.logspace(0, -2, 24)  # 24 columns of rank 8, badly scaled
    def sample(n):
        y = rng.integers(0, 6, n)
        x = (centers[y] + rng.normal(size=(n, 8))) @ mix
        return np.concatenate([x, np.full((n, 2), 3.0)], axis=1).astype(np.float32), y  # + 2 constant columns
    (xtr, ytr), (xva, yva), (xte, yte) = sample(600), sample(300), sample(600)
    acc = {}
    for whiten in (0.1, None):
        head = GridProbe(epochs=3, seed=0, whiten=whiten).fit([xtr], ytr, [xva], yva, 6)[0]
        assert np.isfinite(head.weight).all() and np.isfinite(head.logits(xte)).all()
        acc[whiten] = (head.logits(xte).argmax(1) == yte).mean()
    # Null directions get no gradient, so the shrunk whitening leaves them at zero; the head is mapped back
    # to standardised features, so its own logits give the accuracy. (Faster convergence: benchmarks/.)
    assert acc[0.1] > 0.7 and acc[0.1] >= acc[None] - 0.05


def test_class_balanced_loss_helps_the_rare_class():
    rng = np.random.default_rng(1)
    def sample(n_major, n_minor):
        x = np.concatenate([rng.normal(0, 1, (n_major, 2)), rng.normal(1.2, 1, (n_minor, 2))]).astype(np.float32)
        return x, np.array([0] * n_major + [1] * n_minor)
    xtr, ytr = sample(950, 50)
    xva, yva = sample(950, 50)
    xte, yte = sample(500, 500)
    plain = GridProbe(epochs=40, seed=0).fit([xtr], ytr, [xva], yva, 2)[0]
    bal = GridProbe(epochs=40, seed=0, class_balanced=True).fit([xtr], ytr, [xva], yva, 2)[0]
    recall = lambda h: (h.logits(xte[yte == 1]).argmax(1) == 1).mean()  # noqa: E731
    assert recall(bal) > recall(plain) + 0.2


def test_bundle_reproduces_the_probe_on_test_images(tiny_probe, tiny_store, synth_images, predictions):
    out, r = tiny_probe
    bundle = ClassifierBundle.load(out / "bundle")
    assert bundle.meta["block"] == r["best"]["block"] and bundle.meta["timestep"] == r["best"]["timestep"]
    test = synth_images.splits == "test"
    probs = softmax(bundle.logits(synth_images.images[test]) / bundle.temperature, axis=1)  # already preprocessed
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    # The probe's own classes on the stored features give its accuracy exactly; the bundle, computing the
    # features again, gives the same classes image by image (one borderline image may flip under bf16).
    stored = predictions.from_store(out / "bundle", tiny_store)
    assert (stored == synth_images.labels[test]).mean() == pytest.approx(r["best"]["test_accuracy"], abs=1e-9)
    flips = predictions.flips(probs.argmax(1), stored)
    acc = (probs.argmax(1) == synth_images.labels[test]).mean()
    assert abs(acc - r["best"]["test_accuracy"]) <= flips / test.sum() + 1e-9
    assert bundle.meta["metrics"]["test_accuracy"] == r["best"]["test_accuracy"]


def test_tampered_bundle_is_refused(tiny_probe, tmp_path):
    import shutil

    out, _ = tiny_probe
    bad = tmp_path / "bundle"
    shutil.copytree(out / "bundle", bad)
    meta = json.loads((bad / "bundle.json").read_text())
    meta["timestep"] = "ten"
    (bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(DiffprobeError, match="field 'timestep'"):
        ClassifierBundle.load(bad)
    meta["timestep"], meta["image_size"] = 10, 64
    (bad / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(DiffprobeError, match="64 px"):
        ClassifierBundle.load(bad)
    (bad / "probe.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(DiffprobeError, match="probe.safetensors"):
        ClassifierBundle.load(bad)


def test_temperature_scaling_lowers_ece_on_overconfident_logits():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 2000)
    logits = rng.normal(size=(2000, 5))
    logits[np.arange(2000), y] += 1.5
    logits *= 6  # overconfident
    t = fit_temperature(logits[:1000], y[:1000])
    soft = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
    before = expected_calibration_error(soft(logits[1000:]), y[1000:])
    after = expected_calibration_error(soft(logits[1000:] / t), y[1000:])
    assert t > 2 and after < before / 2


def test_probe_needs_a_val_part(tiny_store, tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_store, "splits", np.where(tiny_store.splits == "val", "train", tiny_store.splits))
    with pytest.raises(DiffprobeError, match="val part is empty"):
        run_probe(tiny_store, tmp_path)


def test_cluster_scores(tiny_store, tiny_probe, tmp_path):
    from diffprobe.evaluate import cluster_store, kmeans_scores
    from diffprobe.workflows.pipeline import run_cluster

    _, r = tiny_probe
    s = run_cluster(tiny_store, tmp_path, results=r)
    assert s["k"] == 8 and 0 <= s["nmi"] <= 1 and -1 <= s["ari"] <= 1 and 0 < s["purity"] <= 1
    assert json.loads((tmp_path / "cluster.json").read_text()) == s == cluster_store(tiny_store, results=r)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 50)
    separated = kmeans_scores(np.eye(3)[y] * 10 + rng.normal(size=(150, 3)), y)
    assert separated["nmi"] > 0.9 and separated["purity"] > 0.95


def test_a_store_larger_than_the_memory_budget_is_probed_in_chunks(tiny_store, tiny_probe, tmp_path):
    from diffprobe.probe.run import pair_chunks

    per_pair_gb = len(tiny_store) * max(tiny_store.dims.values()) * 4 / 2**30
    chunks = pair_chunks(tiny_store, max_gb=2.5 * per_pair_gb)
    assert [i for c in chunks for i in c] == list(range(len(tiny_store.pairs)))
    assert len(chunks) > 3 and all(
        sum(len(tiny_store) * tiny_store.dims[tiny_store.pairs[i][0]] * 4 for i in c) <= 2.5 * per_pair_gb * 2**30
        for c in chunks)
    _, whole = tiny_probe
    r = run_probe(tiny_store, tmp_path, probe=GridProbe(epochs=30, seed=0), max_gb=2.5 * per_pair_gb, bundle=False)
    assert [(g["block"], g["timestep"]) for g in r["grid"]] == [(g["block"], g["timestep"]) for g in whole["grid"]]
    # Each probe trains on its own; only early stopping is shared within a chunk, so scores stay close.
    assert np.mean([abs(a["val_accuracy"] - b["val_accuracy"]) for a, b in zip(r["grid"], whole["grid"])]) < 0.05
    assert r["best"]["test_accuracy"] > 2 * r["chance_accuracy"]

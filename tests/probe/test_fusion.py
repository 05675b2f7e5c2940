"""Fusion of the top pairs: complementary pairs fused beat each pair alone; everything chosen on val."""

import json

import numpy as np
import pytest

from diffprobe.cli import main
from diffprobe.features.extract import FeatureSpec
from diffprobe.features.store import FORMAT_VERSION, FeatureStore, pair_name
from diffprobe.probe import GridProbe
from diffprobe.probe.mlp import MLPProbe
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.fusion import fuse_pairs
from diffprobe.workflows.probe import run_probe


def _xor_store(path, n=600, seed=0):
    """4 classes; block 'a' at t=1 sees only class // 2, block 'b' at t=1 only class % 2, the rest noise.
    Each pair alone is stuck near 50%; the two together separate all four classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    splits = np.array(["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    signal = {("a", 1): y // 2, ("b", 1): y % 2}
    path.mkdir()
    for b in ("a", "b", "c"):
        for t in (1, 2):
            x = rng.normal(size=(n, 8)).astype(np.float32)
            if (b, t) in signal:
                x[:, 0] += 3.0 * (2 * signal[(b, t)] - 1)
            np.save(path / f"{pair_name(b, t)}.npy", x)
    np.save(path / "labels.npy", y)
    np.save(path / "splits.npy", splits)
    meta = {"format": FORMAT_VERSION, "spec": FeatureSpec(timesteps=(1, 2)).to_dict(), "blocks": ["a", "b", "c"],
            "dims": {"a": 8, "b": 8, "c": 8}, "classes": ["c0", "c1", "c2", "c3"], "preprocess": {"size": 32}}
    (path / "meta.json").write_text(json.dumps(meta))
    return FeatureStore(path)


@pytest.fixture
def xor(tmp_path):
    store = _xor_store(tmp_path / "features-xor")
    return store, run_probe(store, tmp_path / "probe", probe=GridProbe(epochs=30), bundle=False)


def test_fusing_complementary_pairs_beats_every_single_pair(xor, tmp_path):
    store, results = xor
    assert results["best"]["test_accuracy"] < 0.65
    r = fuse_pairs(store, results, tmp_path / "fuse", ks=(2, 3, 6), probe=GridProbe(epochs=30))
    best = r["best"]
    assert {(p["block"], p["timestep"]) for p in r["candidates"][0]["pairs"]} == {("a", 1), ("b", 1)}
    assert best["test_accuracy"] > 0.9 and best["test_accuracy"] > results["best"]["test_accuracy"] + 0.25
    assert best["val_accuracy"] == max(c["val_accuracy"] for c in r["candidates"])
    assert [c["dim"] for c in r["candidates"]] == [16, 24, 48]
    assert (tmp_path / "fuse" / "fusion.md").read_text().startswith("# Fused features")


def test_fuse_refuses_results_of_another_store_and_too_few_pairs(xor, tmp_path):
    store, results = xor
    with pytest.raises(DiffprobeError, match="not on"):
        fuse_pairs(store, {**results, "feature_store": "/x/features-other"}, tmp_path / "f")
    with pytest.raises(DiffprobeError, match="at least 2 pairs"):
        fuse_pairs(store, results, tmp_path / "f", ks=(1, 99))


def test_fuse_command(xor, tmp_path):
    store, _ = xor
    assert main(["fuse", "--features", str(store.path), "--results", str(tmp_path / "probe" / "results.json"),
                 "--out", str(tmp_path / "cli"), "--ks", "2"]) == 0
    assert json.loads((tmp_path / "cli" / "fusion.json").read_text())["best"]["k"] == 2


def test_refit_on_train_and_val_is_reported_beside_the_train_only_head(xor, tmp_path):
    store, results = xor
    r = fuse_pairs(store, results, tmp_path / "fuse", ks=(2,), head="mlp", refit=True,
                   mlp=MLPProbe(hidden=(32,), dropout=(0.1,), input_dropout=0.0, epochs=40, lr=1e-2))
    f = r["refit"]
    assert f["parts"] == ["train", "val"] and f["images"] == 450 and f["epoch"] == r["best"]["mlp"]["epoch"]
    assert f["test_accuracy"] > 0.9 and np.isfinite(f["test_log_loss"])
    assert "Refit on train + val" in (tmp_path / "fuse" / "fusion.md").read_text()
    with pytest.raises(DiffprobeError, match="MLP head"):
        fuse_pairs(store, results, tmp_path / "lin", ks=(2,), refit=True)

"""The simulated annotator (``diffprobe.app.annotator``, which the annotation benchmark runs) on a tiny labelled
set (seconds): every strategy reaches the targets, the counts are what the strategies promise, a run merges into
an earlier one, and the timing mode's synthetic project opens in the app."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diffprobe.app import annotator
from diffprobe.app.simulate import synthetic_project


def blobs(n_classes=6, per_class=50, dim=16, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (n_classes, dim))
    labels = np.repeat(np.arange(n_classes), per_class)
    features = (centres[labels] + rng.normal(0, 1, (len(labels), dim))).astype(np.float32)
    order = rng.permutation(len(labels))
    return features[order], labels[order]


def test_a_review_costs_one_decision_per_wrong_image_and_one_for_the_rest():
    s = annotator.Annotation(np.array([0, 0, 1, 2]), (0.5, 1.0), predicted=np.array([0, 0, 0, 0]))
    s.review(np.array([0, 1, 2, 3]), np.array([0, 0, 0, 0]))
    assert s.decisions == 3 and s.validated.all()       # 2 moved one by one, then 2 validated at once
    assert s.reached == {0.5: 2, 1.0: 3}                 # half validated after the second move
    assert s.reached_with_predictions == {0.5: 0, 1.0: 2}  # the right predictions count from the start
    s.review(np.array([0, 1]), np.array([0, 0]))         # validated already: nothing to do
    assert s.decisions == 3


def test_every_strategy_reaches_the_targets_with_sane_counts():
    features, labels = blobs()
    n = len(labels)
    result = annotator.simulate(features, labels, retrain_every=2)  # pages of 100: one retrain, after 200
    assert result["n"] == n == 300 and result["model_accuracy"] > 0.7
    s = result["strategies"]
    assert set(s) == set(annotator.STRATEGIES)
    for name, r in s.items():
        counts = [r["decisions"][str(t)] for t in annotator.TARGETS]
        assert all(c is not None for c in counts), name
        assert counts == sorted(counts), name
        assert r["validated_at_end"] >= 0.8 * n
        if r["decisions_with_predictions"] is not None:  # the model's right guesses can only help
            assert all(r["decisions_with_predictions"][str(t)] <= r["decisions"][str(t)] for t in annotator.TARGETS)
    assert [s["one_at_a_time"]["decisions"][str(t)] for t in annotator.TARGETS] == [
        math.ceil(t * n) for t in annotator.TARGETS]
    one = s["one_at_a_time"]["decisions"]["0.8"]
    # With a decent model and clear clusters, group actions save most of the clicks.
    assert s["confidence_pages"]["decisions"]["0.8"] < 0.5 * one
    assert s["cluster_grow"]["decisions"]["0.8"] < 0.5 * one
    assert s["active_learning"]["decisions"]["0.8"] < one and s["active_learning"]["retrains"] >= 1


def test_given_probabilities_are_the_model():
    features, labels = blobs(n_classes=3, per_class=30)
    probs = np.full((len(labels), 3), 0.1)
    probs[np.arange(len(labels)), labels] = 0.8  # a perfect model
    r = annotator.simulate(features, labels, probs, ["a", "b", "c"], strategies=("confidence_pages",))
    assert r["model_accuracy"] == 1.0 and r["model"] == "the file's probs"
    # Every page right: one action per page (3 classes of 30, one page each), and right from the start.
    assert r["strategies"]["confidence_pages"]["decisions"] == {"0.6": 2, "0.7": 3, "0.8": 3}
    assert r["strategies"]["confidence_pages"]["decisions_with_predictions"] == {"0.6": 0, "0.7": 0, "0.8": 0}


def test_the_timing_project_opens_in_the_app(tmp_path):
    from fastapi.testclient import TestClient

    from diffprobe.app.project import Project
    from diffprobe.app.server import create_app

    synthetic_project(tmp_path / "p", 300, 8, 5)
    project = Project.open(tmp_path / "p")
    try:
        with TestClient(create_app(project, user="bench")) as client:
            assert client.get("/api/project").json()["n_objects"] == 300
            assert len(client.get("/api/objects", params={"label": "class_000", "per_page": 10}).json()["objects"]) == 10
    finally:
        project.close()


def test_merge_adds_one_strategy_to_an_earlier_run_and_refuses_another_run(tmp_path):
    features, labels = blobs(per_class=20)
    earlier = annotator.simulate(features, labels, strategies=("one_at_a_time", "cluster_grow"))
    path = tmp_path / "annotation_x.json"
    path.write_text(json.dumps({"features": "x.npz", **earlier}))
    now = annotator.simulate(features, labels, strategies=("one_at_a_time",), seed=0)
    now["strategies"]["one_at_a_time"]["seconds"] = -1.0  # marks the new result
    out = annotator.merged(path, {"features": "y.npz", **now})
    assert list(out["strategies"]) == ["one_at_a_time", "cluster_grow"]  # STRATEGIES order, the other kept
    assert out["strategies"]["one_at_a_time"]["seconds"] == -1.0
    assert out["strategies"]["cluster_grow"] == earlier["strategies"]["cluster_grow"]
    assert out["features"] == "x.npz"
    with pytest.raises(SystemExit, match="retrain_every"):
        annotator.merged(path, {**now, "retrain_every": 7})

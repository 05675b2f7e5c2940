"""Abundance estimators: CC is biased under prior shift; ACC and EM correct it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import confusion_matrix

from diffprobe.evaluate.abundance import (
    abundance_error,
    adjusted_classify_and_count,
    classify_and_count,
    em_prior_adjustment,
    estimate_shares,
    pred_given_true,
    prior_shift_experiment,
    sample_abundances,
)

MEANS = np.array([0.0, 1.5, 3.0])  # three overlapping 1-D classes, unit variance
TRAIN_COUNTS = np.array([100, 100, 100])


def _draw(priors, n, seed):
    """Images of a known prior: (exact, hence calibrated, posteriors under the training prior, labels)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(priors), n, p=priors)
    x = rng.normal(MEANS[y], 1.0)
    lik = norm.pdf(x[:, None], MEANS[None, :], 1.0) * (TRAIN_COUNTS / TRAIN_COUNTS.sum())
    return lik / lik.sum(1, keepdims=True), y


@pytest.fixture(scope="module")
def val_confusion():
    probs, y = _draw(TRAIN_COUNTS / TRAIN_COUNTS.sum(), 6000, seed=1)
    return confusion_matrix(y, probs.argmax(1), labels=range(3))


def test_acc_and_em_beat_cc_under_prior_shift(val_confusion):
    truth = np.array([0.75, 0.2, 0.05])
    probs, y = _draw(truth, 8000, seed=2)
    est = estimate_shares(probs, val_confusion=val_confusion, train_counts=TRAIN_COUNTS)
    err = {k: abundance_error(v, np.bincount(y, minlength=3) / len(y)) for k, v in est.items()}
    assert err["cc"] > 0.08  # classify-and-count is visibly biased towards the training prior
    assert err["acc"] < err["cc"] / 3 and err["em"] < err["cc"] / 3
    for v in est.values():
        assert v.min() >= 0 and v.sum() == pytest.approx(1.0)


def test_prior_shift_experiment_ranks_estimators(val_confusion):
    probs, y = _draw(np.ones(3) / 3, 3000, seed=3)
    r = prior_shift_experiment(probs, y, val_confusion=val_confusion, train_counts=TRAIN_COUNTS, n_trials=20,
                               sample_size=2000, seed=0)
    e = r["mean_error"]
    assert r["n_trials"] == 20 and r["sample_size"] == 2000
    assert e["acc"] < e["cc"] and e["em"] < e["cc"]
    again = prior_shift_experiment(probs, y, val_confusion=val_confusion, train_counts=TRAIN_COUNTS, n_trials=20,
                                   sample_size=2000, seed=0)
    assert again == r  # seeded


def test_without_shift_em_keeps_the_training_prior():
    probs, _ = _draw(np.ones(3) / 3, 6000, seed=4)
    prior, post = em_prior_adjustment(probs, TRAIN_COUNTS)
    assert np.abs(prior - 1 / 3).max() < 0.03
    assert post.shape == probs.shape and np.allclose(post.sum(1), 1)


def test_small_pieces():
    assert classify_and_count(np.array([0, 0, 2]), 4).tolist() == pytest.approx([2 / 3, 0, 1 / 3, 0])
    assert abundance_error([1, 0], [0, 1]) == 1.0 and abundance_error([0.5, 0.5], [0.5, 0.5]) == 0.0
    cm = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])  # class 2 has no val images
    m = pred_given_true(cm)
    assert m[:, 0].tolist() == [0.8, 0.2, 0.0] and m[:, 2].tolist() == [0, 0, 1]
    # ACC inverts a known confusion exactly and never returns negative shares.
    p = np.array([0.3, 0.7, 0.0])
    assert adjusted_classify_and_count(m @ p, cm) == pytest.approx(p, abs=1e-9)
    assert adjusted_classify_and_count(np.array([1.0, 0.0, 0.0]), cm).min() >= 0


def test_sample_abundances_rows():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    meta = {"val_confusion": [[5, 0], [0, 5]], "train_class_counts": [10, 10]}
    rows = sample_abundances(["a", "b", "a"], probs, ["x", "y"], meta, unknown=np.array([False, True, False]))
    assert [(r["sample"], r["class"]) for r in rows] == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    a_x = rows[0]
    assert a_x["n_images"] == 2 and a_x["cc_count"] == 2 and a_x["cc_share"] == 1.0 and a_x["acc_share"] == 1.0
    assert rows[2]["n_flagged_unknown"] == 1 and rows[3]["cc_count"] == 1
    assert {"em_share", "em_count", "acc_count"} <= set(a_x)

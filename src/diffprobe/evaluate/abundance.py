"""Class abundances (how many of each class a sample holds), robust to prior shift.

Counting a classifier's predictions ("classify and count", CC) is biased whenever the class
proportions of a sample differ from those the classifier was trained on, which in plankton
work they always do (seasons, places, blooms): a rare class's errors pile into the common
ones. Two standard corrections:

- ACC, adjusted classify and count: with M[i, j] = P(predicted i | true j) measured on val,
  the predicted shares q satisfy q = M p for the true shares p; solve for p >= 0 by
  non-negative least squares and normalise (Forman 2008).
- EM, prior adjustment (Saerens, Latinne & Decaestecker 2002): re-weight calibrated
  probabilities by new_prior / train_prior, re-estimate the prior as their mean, repeat.

Error of an estimate: half the sum over classes of |estimated share - true share| (the total
variation distance: the share of the sample that would have to move class; 0 = perfect, 1 = all
wrong).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from ..utils import DiffprobeError, stable_seed

METHODS = ("cc", "acc", "em")


def classify_and_count(pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) predicted class indices -> (C,) shares of each class."""
    counts = np.bincount(np.asarray(pred, dtype=np.int64), minlength=n_classes)[:n_classes].astype(float)
    return counts / max(1.0, counts.sum())


def pred_given_true(val_confusion: np.ndarray) -> np.ndarray:
    """(C, C) confusion counts (rows true, columns predicted, as sklearn) -> M[i, j] = P(pred i | true j).

    A class without val images gets an identity column (assumed always recognised): the least
    committal choice when nothing is known about its errors.
    """
    cm = np.asarray(val_confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise DiffprobeError(f"val confusion matrix must be square, got shape {cm.shape}")
    rows = cm.sum(1, keepdims=True)
    m = np.divide(cm, rows, out=np.eye(len(cm)), where=rows > 0)
    return m.T


def adjusted_classify_and_count(cc_shares: np.ndarray, val_confusion: np.ndarray) -> np.ndarray:
    """CC shares (C,) and val confusion counts (C, C) -> corrected shares (C,), non-negative, summing to 1."""
    q = np.asarray(cc_shares, dtype=float)
    p, _ = nnls(pred_given_true(val_confusion), q)
    return p / p.sum() if p.sum() > 0 else q


def em_prior_adjustment(probs: np.ndarray, train_priors: np.ndarray, *, max_iter: int = 1000,
                        tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Saerens et al. (2002). probs: (N, C) calibrated posteriors under the training priors (C,).

    Returns (new priors (C,), adjusted posteriors (N, C)).
    """
    probs = np.asarray(probs, dtype=float)
    train = np.asarray(train_priors, dtype=float)
    train = np.clip(train / train.sum(), 1e-12, None)
    prior = train.copy()
    post = probs
    for _ in range(max_iter):
        w = probs * (prior / train)
        post = w / np.clip(w.sum(1, keepdims=True), 1e-300, None)
        new = post.mean(0)
        if np.abs(new - prior).max() < tol:
            prior = new
            break
        prior = new
    return prior, post


def abundance_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Half the L1 distance between two share vectors (0 = identical, 1 = disjoint)."""
    return float(0.5 * np.abs(np.asarray(estimate, float) - np.asarray(truth, float)).sum())


def estimate_shares(probs: np.ndarray, *, val_confusion=None, train_counts=None) -> dict[str, np.ndarray]:
    """(N, C) calibrated probabilities -> {"cc", "acc" (needs val_confusion), "em" (needs train_counts)}."""
    n_classes = probs.shape[1]
    out = {"cc": classify_and_count(probs.argmax(1), n_classes)}
    if val_confusion is not None:
        out["acc"] = adjusted_classify_and_count(out["cc"], val_confusion)
    if train_counts is not None:
        out["em"] = em_prior_adjustment(probs, train_counts)[0]
    return out


def prior_shift_experiment(probs: np.ndarray, labels: np.ndarray, *, val_confusion=None, train_counts=None,
                           n_trials: int = 50, sample_size: int | None = None, seed: int = 0) -> dict:
    """Error of each estimator on synthetic samples with random class proportions.

    Each trial draws proportions from a flat Dirichlet over the classes present in ``labels``,
    then a sample of ``sample_size`` images (default: as many as given) with those proportions,
    drawn with replacement from the images of each class. probs (N, C), labels (N,).
    Returns {"n_trials", "sample_size", "mean_error": {method: float}, "std_error": {...}}.
    """
    labels = np.asarray(labels)
    present = np.unique(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in present}
    n = sample_size or len(labels)
    rng = np.random.default_rng(stable_seed("prior-shift", seed))
    errors: dict[str, list[float]] = {}
    for _ in range(n_trials):
        counts = rng.multinomial(n, rng.dirichlet(np.ones(len(present))))
        idx = np.concatenate([rng.choice(by_class[c], k) for c, k in zip(present, counts) if k])
        truth = np.bincount(labels[idx], minlength=probs.shape[1]) / len(idx)
        for method, est in estimate_shares(probs[idx], val_confusion=val_confusion,
                                           train_counts=train_counts).items():
            errors.setdefault(method, []).append(abundance_error(est, truth))
    return {"n_trials": n_trials, "sample_size": int(n),
            "mean_error": {m: float(np.mean(e)) for m, e in errors.items()},
            "std_error": {m: float(np.std(e)) for m, e in errors.items()}}


def sample_abundances(samples: list[str], probs: np.ndarray, classes: list[str], meta: dict,
                      unknown: np.ndarray | None = None) -> list[dict]:
    """Per-sample abundance rows: one per (sample, class) with the image count of the sample,
    CC count and share, ACC and EM shares (where the bundle allows) and their counts
    (share x images). ``unknown`` (N,) bool: images flagged unknown, counted per sample."""
    shares_kw = {"val_confusion": meta.get("val_confusion"), "train_counts": meta.get("train_class_counts")}
    samples = np.asarray(samples, dtype=object)
    rows = []
    for s in sorted(set(samples.tolist())):
        m = samples == s
        n = int(m.sum())
        est = estimate_shares(probs[m], **shares_kw)
        n_unknown = int(unknown[m].sum()) if unknown is not None else ""
        for k, c in enumerate(classes):
            row = {"sample": s, "class": c, "n_images": n, "n_flagged_unknown": n_unknown,
                   "cc_count": int(round(est["cc"][k] * n))}
            for method in METHODS:
                if method in est:
                    row[f"{method}_share"] = round(float(est[method][k]), 6)
                    if method != "cc":
                        row[f"{method}_count"] = round(float(est[method][k]) * n, 2)
            rows.append(row)
    return rows


def abundance_errors(probs: np.ndarray, labels: np.ndarray, meta: dict, *, n_trials: int, seed: int) -> dict:
    """Share estimates on labelled images as they are, and their error under synthetic prior shift: probs (N, C)
    calibrated, labels (N,), ``meta`` a bundle's (its ``val_confusion`` enables ACC, its ``train_class_counts``
    EM). Returns {"error": {method: float}, "prior_shift": ``prior_shift_experiment``'s dict} (and a "note"
    when ACC cannot run)."""
    kw = {"val_confusion": meta.get("val_confusion"), "train_counts": meta.get("train_class_counts")}
    truth = np.bincount(labels, minlength=probs.shape[1]) / len(labels)
    est = estimate_shares(probs, **kw)
    out = {"error": {k: abundance_error(v, truth) for k, v in est.items()},
           "prior_shift": prior_shift_experiment(probs, labels, n_trials=n_trials, seed=seed, **kw)}
    if kw["val_confusion"] is None:
        out["note"] = "no val confusion matrix in the bundle: run 'diffprobe calibrate' to enable ACC"
    return out

"""Classification metrics (scikit-learn), computed the same way for every method."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """top-1 accuracy, macro F1 (over the classes present in y_true or y_pred), balanced accuracy."""
    if len(y_true) == 0:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "balanced_accuracy": float("nan")}
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }


def per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[float]:
    """F1 of each class 0 .. n_classes - 1 (0 for a class neither true nor predicted)."""
    return [float(v) for v in f1_score(y_true, y_pred, labels=range(n_classes), average=None, zero_division=0)]


def chance_accuracy(y_test: np.ndarray) -> float:
    """The majority-class share of the test part: what always guessing the largest class scores."""
    return float(np.bincount(y_test).max() / len(y_test)) if len(y_test) else float("nan")


def multiclass_log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-probability of the true class (the 2015 NDSB competition's metric), with the
    competition's clipping of probabilities to [1e-15, 1 - 1e-15]."""
    if len(y_true) == 0:
        return float("nan")
    p = np.clip(proba[np.arange(len(y_true)), y_true], 1e-15, 1 - 1e-15)
    return float(-np.log(p).mean())

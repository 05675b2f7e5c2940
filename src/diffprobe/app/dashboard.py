"""The dashboard: what the model's counts are worth, judged by what people validated.

Per class the model predicts: how many objects, how many of those a person validated, and the precision that
sample gives (validated as predicted / validated) with a Wilson interval. Abundances: the model's counts
(classify and count) and the library's adjusted classify and count (``evaluate.abundance``), whose
P(predicted | true) comes from the validated objects, with a bootstrap interval over them, never below the number
of objects validated as the class (a person saw them). The confusion:
validated label against predicted label.

Both estimates assume the validated objects are a fair sample of their class. People validate what they choose
to look at (often the confident images first), so read them as optimistic until a random sample is validated.
After a retrain, the validated objects carry their cross-validated prediction (``learn.fit_and_predict``), so a
retrain does not inflate the precision.
"""

from __future__ import annotations

import math

import numpy as np

from ..evaluate import adjusted_classify_and_count
from .project import Project

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval
N_BOOTSTRAP = 200


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` ((0, 1) when n is 0): unlike p +- z*se it stays in
    [0, 1] and does not collapse to a point when every validated image was right."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def acc_counts(predicted: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Adjusted classify and count, as object counts: (C,) predicted counts and (C, C) confusion (rows validated
    label, columns predicted label) -> (C,) estimated counts."""
    total = predicted.sum()
    return adjusted_classify_and_count(predicted / max(total, 1), confusion) * total


def summary(project: Project, *, n_bootstrap: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """The dashboard's numbers: totals, one row per class, and the confusion of validated against predicted."""
    classes = project.store.classes()
    index = {c: k for k, c in enumerate(classes)}
    predicted = np.zeros(len(classes), np.int64)
    confusion = np.zeros((len(classes), len(classes)), np.int64)  # rows: validated label, columns: predicted
    n_dubious = 0
    for predicted_label, label, status, n in project.store.label_counts():
        predicted[index[predicted_label]] += n
        if status == "validated":
            confusion[index[label], index[predicted_label]] += n
        n_dubious += n if status == "dubious" else 0
    n_validated = int(confusion.sum())
    validated_among = confusion.sum(0)
    correct = np.diag(confusion)

    acc = low = high = None
    if n_validated:
        acc = acc_counts(predicted, confusion)
        rng = np.random.default_rng(seed)
        cells = confusion.ravel() / n_validated
        draws = np.stack([acc_counts(predicted, rng.multinomial(n_validated, cells).reshape(confusion.shape))
                          for _ in range(n_bootstrap)])
        low, high = np.percentile(draws, [2.5, 97.5], axis=0)
        # A class holds at least the images a person validated as it, whatever the correction says.
        floor = confusion.sum(1)
        acc, low, high = np.maximum(acc, floor), np.maximum(low, floor), np.maximum(high, floor)

    rows = []
    for k, name in enumerate(classes):
        precision_low, precision_high = wilson_interval(int(correct[k]), int(validated_among[k]))
        rows.append({
            "class": name, "predicted": int(predicted[k]), "validated": int(validated_among[k]),
            "validated_as_predicted": int(correct[k]), "validated_as_this": int(confusion[k].sum()),
            "precision": round(correct[k] / validated_among[k], 4) if validated_among[k] else None,
            "precision_low": round(precision_low, 4), "precision_high": round(precision_high, 4),
            "abundance": round(float(acc[k]), 1) if acc is not None else None,
            "abundance_low": round(float(low[k]), 1) if low is not None else None,
            "abundance_high": round(float(high[k]), 1) if high is not None else None})
    accuracy_low, accuracy_high = wilson_interval(int(correct.sum()), n_validated)
    involved = [k for k in range(len(classes)) if confusion[k].any() or confusion[:, k].any()]
    return {
        "n_objects": int(predicted.sum()), "n_validated": n_validated, "n_dubious": n_dubious,
        "share_validated": round(n_validated / max(int(predicted.sum()), 1), 4),
        "accuracy": round(correct.sum() / n_validated, 4) if n_validated else None,
        "accuracy_low": round(accuracy_low, 4), "accuracy_high": round(accuracy_high, 4),
        "n_bootstrap": n_bootstrap, "classes": rows,
        "confusion": {"classes": [classes[k] for k in involved],
                      "counts": confusion[np.ix_(involved, involved)].tolist()}}

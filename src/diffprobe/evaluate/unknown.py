"""Rejecting images of classes the model never saw ("unknowns").

A linear probe always names one of its classes, even for a species it was never trained on.
Two standard scores say how "known" an image looks; higher means more likely a known class:

- ``msp``: the maximum softmax probability (Hendrycks & Gimpel 2017), on calibrated
  (temperature-scaled) probabilities.
- ``energy``: the negative free energy ``T * logsumexp(logits / T)`` (Liu et al. 2020), which
  keeps the logits' magnitude that the softmax throws away.

A threshold per score is chosen on val (known classes only) so that a target share of known
images (default 95%) is accepted; images scoring below it are flagged ``unknown``. How well a
score separates unknowns is measured by AUROC on images of held-out classes (0.5 = no better
than chance, 1.0 = perfect separation); ``evaluate`` reports it when the data holds classes
the model does not know.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ..probe.calibration import SCORES, known_scores, unknown_thresholds
from ..utils import DiffprobeError, read_json, write_json

__all__ = ["SCORES", "fit_unknown_threshold", "flag_unknown", "known_scores", "openset_auroc", "unknown_thresholds"]

def fit_unknown_threshold(bundle_dir: str | Path, val_logits: np.ndarray, accept: float = 0.95) -> dict:
    """Fit the thresholds on val logits with the bundle's temperature; rewrite bundle.json (atomically)."""
    path = Path(bundle_dir) / "bundle.json"
    meta = read_json(path)
    meta["unknown"] = unknown_thresholds(val_logits, float(meta.get("temperature", 1.0)), accept)
    write_json(path, meta)
    return meta["unknown"]


def flag_unknown(logits: np.ndarray, meta: dict, score: str | None = None) -> np.ndarray | None:
    """(N,) bool, True where the score is below the bundle's threshold; None if it has none."""
    unk = meta.get("unknown")
    if not unk:
        return None
    score = score or unk.get("default_score", "msp")
    if score not in SCORES:
        raise DiffprobeError(f"unknown score {score!r}; choose one of {SCORES}")
    return known_scores(logits, float(meta["temperature"]))[score] < unk["thresholds"][score]


def openset_auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """AUROC of telling known-class images (positives) from unknown ones by a score (higher = known)."""
    if len(known) == 0 or len(unknown) == 0:
        return float("nan")
    y = np.r_[np.ones(len(known)), np.zeros(len(unknown))]
    return float(roc_auc_score(y, np.r_[known, unknown]))


def openset_report(known_logits: np.ndarray, unknown_logits: np.ndarray, meta: dict) -> dict:
    """AUROC of each score plus, where the bundle has thresholds, the share of known images
    accepted and of unknown images rejected."""
    t = float(meta["temperature"])
    k, u = known_scores(known_logits, t), known_scores(unknown_logits, t)
    out: dict = {"n_known": int(len(known_logits)), "n_unknown": int(len(unknown_logits))}
    for s in SCORES:
        out[f"auroc_{s}"] = openset_auroc(k[s], u[s])
    if meta.get("unknown"):
        s = meta["unknown"].get("default_score", "msp")
        thr = meta["unknown"]["thresholds"][s]
        out.update(score=s, threshold=thr, known_accepted=float(np.mean(k[s] >= thr)),
                   unknown_rejected=float(np.mean(u[s] < thr)))
    return out

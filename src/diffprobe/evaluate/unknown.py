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

import numpy as np
from sklearn.metrics import roc_auc_score

from ..probe.calibration import SCORES, known_scores, unknown_thresholds
from ..utils import DiffprobeError

__all__ = ["SCORES", "flag_unknown", "known_scores", "openset_auroc", "shift_warning", "unknown_thresholds"]

# A batch departs from the bundle's validation data when at least this many images show it and either the
# share flagged unknown is at least SHIFT_UNKNOWN_RATIO times the expected share (and beyond binomial noise,
# z > 3), or the mean confidence fell by SHIFT_CONFIDENCE_DROP or more.
SHIFT_MIN_IMAGES = 30
SHIFT_UNKNOWN_RATIO = 2.0
SHIFT_CONFIDENCE_DROP = 0.15


def flag_unknown(logits: np.ndarray, meta: dict, score: str | None = None) -> np.ndarray | None:
    """(N,) bool, True where the score is below the bundle's threshold; None if it has none."""
    unk = meta.get("unknown")
    if not unk:
        return None
    score = score or unk.get("default_score", "msp")
    if score not in SCORES:
        raise DiffprobeError(f"unknown score {score!r}; choose one of {SCORES}")
    return known_scores(logits, float(meta["temperature"]))[score] < unk["thresholds"][score]


def shift_warning(logits: np.ndarray, meta: dict) -> str | None:
    """A warning when images look unlike the bundle's validation data (a new instrument, site or season),
    judged by the share flagged unknown and the mean confidence; None when they look alike, when there
    are too few images to tell, or when the bundle has no unknown thresholds."""
    unk = meta.get("unknown")
    if not unk or len(logits) < SHIFT_MIN_IMAGES:
        return None
    expected = 1.0 - float(unk["accept"])
    scores = known_scores(logits, float(meta["temperature"]))  # once, for the flags and the confidence
    score = unk.get("default_score", "msp")
    flagged = float((scores[score] < unk["thresholds"][score]).mean())
    confidence = float(scores["msp"].mean())
    noise = np.sqrt(max(expected * (1 - expected), 1e-6) / len(logits))
    signs = []
    if flagged >= SHIFT_UNKNOWN_RATIO * expected and (flagged - expected) / noise > 3:
        signs.append(f"{flagged:.0%} of the images are flagged unknown ({expected:.0%} on its validation data)")
    val_conf = unk.get("val_mean_confidence")
    if val_conf is not None and val_conf - confidence >= SHIFT_CONFIDENCE_DROP:
        signs.append(f"the mean confidence is {confidence:.2f} ({val_conf:.2f} on its validation data)")
    if not signs:
        return None
    return ("these images look unlike the model's training data: " + "; ".join(signs) + ". Another instrument, "
            "site or season? Check a sample by eye before trusting counts; 'diffprobe adapt' refits the model "
            "from a few labelled images of the new data.")


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

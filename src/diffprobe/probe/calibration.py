"""Post-hoc calibration fitted on val: temperature scaling (Guo et al. 2017), expected calibration
error, and the known-class scores and thresholds that flag unknowns (see ``evaluate.unknown``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import logsumexp, softmax

from ..config.evaluate import CalibrateConfig
from ..utils import DiffprobeError


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on held-out (val) data."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: sum over equal-width bins of |accuracy - confidence| x share."""
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


SCORES = ("msp", "energy")


def known_scores(logits: np.ndarray, temperature: float = 1.0) -> dict[str, np.ndarray]:
    """(N, C) logits -> {"msp": (N,), "energy": (N,)}; higher = more like a known class."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return {"msp": softmax(z, axis=1).max(1), "energy": temperature * logsumexp(z, axis=1)}


def unknown_thresholds(val_logits: np.ndarray, temperature: float = 1.0,
                       accept: float = CalibrateConfig.accept) -> dict:
    """Thresholds accepting the share ``accept`` of val images (all of known classes).

    Returns the dict stored in bundle.json under "unknown":
    {"accept": 0.95, "default_score": "msp", "thresholds": {"msp": float, "energy": float},
    "val_mean_confidence": float} (the mean calibrated top-1 probability on val, which the shift warning
    of ``evaluate.unknown.shift_warning`` compares new data against).
    """
    if not 0 < accept <= 1:
        raise DiffprobeError(f"accept rate must be in (0, 1], got {accept}")
    if len(val_logits) == 0:
        raise DiffprobeError("no val images to choose the unknown threshold on")
    scores = known_scores(val_logits, temperature)
    # "lower": the threshold is an observed score, so at least `accept` of val scores are >= it.
    return {"accept": float(accept), "default_score": "msp",
            "thresholds": {k: float(np.quantile(v, 1 - accept, method="lower")) for k, v in scores.items()},
            "val_mean_confidence": float(scores["msp"].mean())}

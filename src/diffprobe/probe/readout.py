"""The few-shot head: a multinomial logistic regression on frozen features, its regularisation chosen by
stratified cross-validation on the labelled images themselves, fast enough for the app's Retrain button.

``fit_adapted_head`` fits it on (N, D) rows; ``fit_readout`` on what ``readout`` names (``READOUTS``): the
features, or the hidden layer of an MLP head trained on the source labels (the new head is then that hidden
layer under a new output layer), or ``auto``, whichever gives the lower cross-validated log loss. No file is
read or written: few-shot adaptation (``workflows.adapt``) and the validation app (``app.learn``,
``app.export``) both fit their heads here.

Shapes: features (N, D); labels integer 0..C-1.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..utils import DiffprobeError
from .linear import LinearHead
from .mlp import MLPHead

READOUTS = ("auto", "hidden", "features")  # what the new output layer reads (fit_readout); the command's
# settings (workflows.config: READOUTS, AdaptConfig) show the same choices and defaults without loading torch

# Regularisation grid (inverse strength) searched by cross-validation on the labelled images.
CS = (0.01, 0.1, 1.0)
FOLDS = 5  # at most; fewer when the rarest class has fewer images
MAX_ITER = 2000
TOL = 1e-3  # lbfgs: stop when no gradient component is larger (scikit-learn's default 1e-4: 5x the time, same C
# and cross-validated accuracy within 0.1 point on NDSB test features, 1,000 labels)
REDUCE_BELOW = 0.75  # fit in the span of the training rows when they are fewer than this share of the features


def _row_space(z: np.ndarray) -> np.ndarray | None:
    """(D, r) orthonormal basis of the span of the rows of ``z`` (n, D), or None when n is not well below D (the
    basis would save little)."""
    n, d = z.shape
    if n > REDUCE_BELOW * d:
        return None
    q, _ = np.linalg.qr(np.asarray(z.T, np.float64))  # (D, n): spans the rows; rank-deficient rows cost nothing
    return q.astype(z.dtype, copy=False)


class _Reduced:
    """Standardise, then (when there are fewer rows than features) rotate onto the row space of the training rows.

    With an L2 penalty and an unpenalised intercept, the logistic regression's optimal weights are a combination
    of the training rows (the gradient of the loss is), so fitting on the (n, r) coordinates in an orthonormal
    basis of their span is the same problem, with the same penalty (the basis is orthonormal), in r <= n
    dimensions instead of D: same optimum, each iteration D / r times cheaper. A row it did not see is projected
    on the same basis; its part outside the span meets zero weight anyway."""

    def __init__(self, x: np.ndarray):
        self.scaler = StandardScaler().fit(x)
        z = self.scaler.transform(x)
        self.basis = _row_space(z)
        self.train = z if self.basis is None else z @ self.basis

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = self.scaler.transform(x)
        return z if self.basis is None else z @ self.basis

    def weights(self, coef: np.ndarray) -> np.ndarray:
        """(K, r) coefficients in the reduced coordinates -> (D, K) weights on the standardised features."""
        return (coef if self.basis is None else coef @ self.basis.T).T

    def raw(self, coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same logits as functions of the raw features: (D, K) weights, (K,) intercepts."""
        w = self.weights(coef) / self.scaler.scale_[:, None]
        return w, intercept - self.scaler.mean_ @ w

    def reduce(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``raw``'s inverse, projected on this space: (K, r) coefficients and (K,) intercepts."""
        ws = w * self.scaler.scale_[:, None]
        coef = (ws if self.basis is None else self.basis.T @ ws).T
        return np.ascontiguousarray(coef, np.float64), b + self.scaler.mean_ @ w


def _logits(lr: LogisticRegression, z: np.ndarray) -> np.ndarray:
    """(n, K) logits; sklearn's binary model gives one, the bundle wants one per class (-d/2, d/2)."""
    d = lr.decision_function(z)
    return np.stack([-d / 2, d / 2], 1) if d.ndim == 1 else d


def fit_adapted_head(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[LinearHead, np.ndarray, float]:
    """Logistic regression on (N, D) features, C chosen by stratified k-fold CV (mean log loss of the held-out
    folds, as ``GridSearchCV(scoring="neg_log_loss")``); returns the head, its (N, C) cross-validated logits (each
    image predicted by a model that did not see it, fitted with the chosen C) and the chosen C.

    The procedure of a grid search of ``StandardScaler() + LogisticRegression(C)`` over ``CS`` followed by
    ``cross_val_predict`` at the best C (the same folds, scorer and choice), made fast enough for the app's Retrain
    button: each fold's scaler is fitted once and its fits for the C values kept, so the held-out logits of the
    chosen C need no second pass; each fit starts from the previous C's solution (the final one from the folds'
    mean) and stops at ``TOL``; with fewer rows than features the fits run on the rows' span (``_Reduced``, the
    same optimum); and BLAS runs on one thread, as these are many small products whose threads cost far more than
    they bring on a busy machine (measured: 26 s with 2 threads, 0.6 s with 1, on 2 cores shared with a training
    job). Deterministic for a given ``seed`` (the folds)."""
    counts = np.bincount(y)
    if (counts[counts > 0] < 2).any() or len(counts[counts > 0]) < 2:
        raise DiffprobeError("adaptation needs at least 2 classes with 2 labelled images each")
    folds = StratifiedKFold(n_splits=int(min(FOLDS, counts[counts > 0].min())), shuffle=True, random_state=seed)
    classes = np.unique(y)
    cv_logits = np.zeros((len(CS), len(y), max(len(classes), 2)), np.float64)
    losses = np.zeros((len(CS), folds.get_n_splits()))
    fold_weights = [[] for _ in CS]  # per C: (D, K) weights and (K,) intercepts on the raw features, per fold
    with threadpool_limits(1, user_api="blas"):
        for k, (train, test) in enumerate(folds.split(x, y)):
            space = _Reduced(x[train])
            z_test = space(x[test])
            lr = LogisticRegression(max_iter=MAX_ITER, tol=TOL, warm_start=True)
            for j, c in enumerate(CS):  # C ascending, each fit starting from the previous one's solution
                lr.set_params(C=c).fit(space.train, y[train])
                cv_logits[j, test] = _logits(lr, z_test)
                losses[j, k] = log_loss(y[test], lr.predict_proba(z_test), labels=lr.classes_)
                fold_weights[j].append(space.raw(lr.coef_, lr.intercept_))
        best = int(np.argmin(losses.mean(1)))  # the first of equals, as GridSearchCV
        space = _Reduced(x)
        lr = LogisticRegression(C=CS[best], max_iter=MAX_ITER, tol=TOL, warm_start=True)
        # Start from the mean of the folds' solutions at that C (the same convex problem on more rows: the optimum
        # is the fit's, the start only saves iterations).
        lr.coef_, lr.intercept_ = space.reduce(np.mean([w for w, _ in fold_weights[best]], 0),
                                               np.mean([b for _, b in fold_weights[best]], 0))
        lr.fit(space.train, y)
        w, b = space.weights(lr.coef_).astype(np.float32), lr.intercept_.astype(np.float32)
    if w.shape[1] == 1:  # sklearn's binary model: one logit; the bundle wants one per class
        w, b = np.concatenate([-w / 2, w / 2], 1), np.array([-b[0] / 2, b[0] / 2], np.float32)
    head = LinearHead(w, b, space.scaler.mean_.astype(np.float32), space.scaler.scale_.astype(np.float32))
    return head, cv_logits[best].astype(np.float32), float(CS[best])


def fit_readout(source: LinearHead | MLPHead, x: np.ndarray, y: np.ndarray, *, readout: str = "auto",
                seed: int = 0) -> tuple[LinearHead | MLPHead, np.ndarray, float, str]:
    """``fit_adapted_head`` on what ``readout`` names (``READOUTS``) of the source bundle's head inputs ``x``
    (N, D): the features themselves, or the hidden activations of ``source`` when it is an MLP head (the new
    head is then ``source``'s hidden layer under the fitted output layer, so it still reads ``x``). ``auto``:
    the hidden layer and the features are both fitted on the same folds, and the lower cross-validated log
    loss wins (the features alone for a linear source head). Returns the head, its (N, C) cross-validated
    logits, C and the readout used."""
    if readout not in READOUTS:
        raise DiffprobeError(f"readout must be one of {', '.join(READOUTS)}, got {readout!r}")
    has_hidden = isinstance(source, MLPHead)
    if readout == "hidden" and not has_hidden:
        raise DiffprobeError("readout 'hidden' needs a bundle with an MLP head; this one's head is linear "
                             "(use 'features' or 'auto')")
    fits = {}
    if readout in ("auto", "hidden") and has_hidden:
        out, cv_logits, c = fit_adapted_head(source.hidden(x), y, seed=seed)
        fits["hidden"] = (source.with_output(out), cv_logits, c)
    if readout in ("auto", "features"):
        fits["features"] = fit_adapted_head(x, y, seed=seed)
    used = min(fits, key=lambda k: -log_softmax(fits[k][1], axis=1)[np.arange(len(y)), y].mean())
    return (*fits[used], used)

"""Few-shot adaptation to a new instrument: a new head on the frozen features, in seconds.

An ecologist who moves to another instrument labels a few dozen images per class and expects the
classifier to follow. The backbone stays frozen: the labelled images are read the way the bundle
reads images (its preprocessing, with the background's polarity decided per image, so dark-field
crops work with a bright-field model), their features computed once, and a multinomial logistic
regression fitted on them (scikit-learn, regularisation chosen by stratified cross-validation on the
labelled images themselves). Temperature and unknown thresholds are fitted on the cross-validated
predictions, so no labelled image is spent twice. The result is a new bundle: same backbone, new
classes (the data's own, or the groups of a class map), new head.

What the regression reads (``readout``): the bundle's features, or, when the bundle's head is an MLP, its hidden
layer (``MLPHead.hidden``), trained on the source labels; the new head is then that hidden layer under a new output
layer. Measured on a dark-field instrument (13 groups, 5 draws): the hidden layer gains 0.02-0.07 macro F1 at
every number of labels from 1 to 50 per group and fits 3x faster (docs/adaptation.md). ``auto`` fits both on
the same folds and keeps the lower cross-validated log loss, so the labelled images decide, as they choose C.

``adapt_bundle`` is two steps: ``adaptation_features`` (read the images, compute their features) and
``bundle_from_features`` (fit and write the bundle). The validation app (``app.export.export_bundle``) calls the
second on its cached features, so a bundle from validated labels is fitted, calibrated and written the same way.

Shapes: features (N, D); labels integer 0..C-1.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..data.dataset import default_cache_dir, load_images
from ..data.manifest import Manifest, open_dataset
from ..data.preprocess import Preprocess
from ..evaluate.crossdata import read_class_map
from ..probe.bundle import ClassifierBundle, not_single_bundle
from ..probe.calibration import fit_temperature, unknown_thresholds
from ..probe.ensemble import ReadingEnsemble
from ..probe.linear import LinearHead
from ..probe.metrics import classification_metrics
from ..probe.mlp import MLPHead
from ..utils import DiffprobeError, atomic_dir, write_json
from .config import READOUTS, AdaptConfig

log = logging.getLogger(__name__)

# Regularisation grid (inverse strength) searched by cross-validation on the labelled images.
CS = (0.01, 0.1, 1.0)
FOLDS = 5  # at most; fewer when the rarest class has fewer images
MAX_ITER = 2000
TOL = 1e-3  # lbfgs: stop when no gradient component is larger (scikit-learn's default 1e-4: 5x the time, same C
# and cross-validated accuracy within 0.1 point on NDSB test features, 1,000 labels)
REDUCE_BELOW = 0.75  # fit in the span of the training rows when they are fewer than this share of the features


def labelled_targets(bundle: ClassifierBundle, data: str | Path | Manifest,
                     class_map: str | Path | None = None) -> tuple[Manifest, list[str], np.ndarray]:
    """The labelled images of ``data`` and their targets: the data's own classes, or the class map's groups
    (images of classes no pattern matches are left out). Returns (manifest, class names, (N,) targets)."""
    m = data if isinstance(data, Manifest) else open_dataset(data, labelled=True)
    m = m.subset([lab is not None for lab in m.labels])
    if len(m) == 0:
        raise DiffprobeError(f"{data}: no labelled images; adaptation needs a few labelled images per class")
    if class_map is None:
        classes = m.classes
        return m, classes, np.array([classes.index(lab) for lab in m.labels])
    cmap = read_class_map(class_map, bundle.classes, m.classes)
    m = m.subset([lab in cmap.data_groups for lab in m.labels])
    if len(m) == 0:
        raise DiffprobeError(f"{class_map}: no data_pattern matches a class of {data}")
    groups = np.array([cmap.data_groups[lab] for lab in m.labels])
    present = sorted(set(groups.tolist()))
    return m, [cmap.groups[g] for g in present], np.searchsorted(present, groups)


def adaptation_preprocess(bundle: ClassifierBundle, polarity: str = "auto", crop: bool | None = None):
    """The bundle's preprocessing with ``polarity`` and (unless None) ``crop`` replaced."""
    pre = replace(bundle.preprocess, polarity=polarity)
    return pre if crop is None else replace(pre, crop=crop)


def adaptation_features(bundle: ClassifierBundle, data: str | Path | Manifest, class_map: str | Path | None = None,
                        *, polarity: str = "auto", crop: bool | None = None,
                        progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """The bundle's features (N, D) of the labelled images of ``data``, read with ``polarity`` and ``crop`` (None:
    the bundle's); their targets (N,), the class names and the number of unreadable files (skipped and
    reported by ``load_images``)."""
    m, classes, y = labelled_targets(bundle, data, class_map)
    arr = load_images(m, adaptation_preprocess(bundle, polarity, crop), cache_dir=default_cache_dir() / "images",
                      progress=progress)
    row = {p: i for i, p in enumerate(m.paths)}
    return bundle.features(arr.images, arr.meta, progress=progress), y[[row[p] for p in arr.paths]], classes, \
        len(arr.skipped)


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


def fit_readout(source: LinearHead | MLPHead, x: np.ndarray, y: np.ndarray, *, readout: str = AdaptConfig.readout,
                seed: int = AdaptConfig.seed) -> tuple[LinearHead | MLPHead, np.ndarray, float, str]:
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


def bundle_from_features(bundle: ClassifierBundle, x: np.ndarray, y: np.ndarray, classes: list[str],
                         out: str | Path, *, origin: dict, preprocess: Preprocess | None = None,
                         readout: str = AdaptConfig.readout, seed: int = AdaptConfig.seed,
                         evaluated_on: str = "the adaptation images", extra: dict | None = None) -> dict:
    """Fit a new head on ``bundle``'s head inputs ``x`` (N, D) with targets ``y`` (N,) indexing ``classes`` (any
    names, new ones too) and write the new bundle to ``out`` (atomically), with ``adapt.json`` beside
    ``bundle.json``; no image is read. The head is ``fit_readout``'s (``readout``); temperature and unknown thresholds
    are fitted on its cross-validated predictions, which are also the metrics ``bundle.json`` reports
    (``evaluated_on`` names the images). ``preprocess``: the new bundle's (None: the bundle's, which must be
    what ``x`` was computed with). The summary (returned, in ``adapt.json`` and under ``adapted`` in
    ``bundle.json``) is ``source_bundle``, then ``origin`` (where the labels came from), the fit, then
    ``extra``."""
    pre = bundle.preprocess if preprocess is None else preprocess
    head, cv_logits, c, used = fit_readout(bundle.head, x, y, readout=readout, seed=seed)
    temperature = fit_temperature(cv_logits, y)
    cv = classification_metrics(y, cv_logits.argmax(1))
    summary = {"source_bundle": str(bundle.path), **origin, "n_images": len(y),
               "per_class": dict(zip(classes, np.bincount(y, minlength=len(classes)).tolist())),
               "readout": used, "C": c, "temperature": temperature, "cross_validated": cv, **(extra or {})}
    meta = {k: v for k, v in bundle.meta.items() if k not in ("val_confusion", "head_config", "unknown",
                                                               "metadata_medians")}
    if bundle.uses_metadata:  # the new instrument's own sizes are now the reference of its pixel scale
        meta["metadata_medians"] = np.median(x[:, -len(bundle.metadata_names):], 0).tolist()
    meta.update(classes=classes, preprocess=pre.to_dict(), temperature=temperature,
                metrics={"test_accuracy": cv["accuracy"], "test_macro_f1": cv["macro_f1"],
                         "evaluated_on": f"cross-validated predictions on {evaluated_on}"},
                train_class_counts=np.bincount(y, minlength=len(classes)).tolist(),
                unknown=unknown_thresholds(cv_logits, temperature), adapted=summary)
    with atomic_dir(out) as tmp:
        ClassifierBundle.save(tmp, model_dir=bundle.backbone.path, head=head, meta=meta)
        write_json(Path(tmp) / "adapt.json", summary)
    log.info("adapted bundle -> %s", out)
    return summary


def adapt_bundle(bundle: ClassifierBundle | str | Path, data: str | Path | Manifest, out: str | Path, *,
                 class_map: str | Path | None = None, polarity: str = AdaptConfig.polarity,
                 crop: bool | None = None, readout: str = AdaptConfig.readout, seed: int = AdaptConfig.seed,
                 progress: bool = True) -> dict:
    """Fit a new head for the labelled images ``data`` on ``bundle``'s frozen features; write the new bundle
    to ``out`` (atomically) with ``adapt.json`` beside ``bundle.json``; return the summary. ``polarity`` and
    ``crop`` (None: the bundle's) are the new bundle's preprocessing (``data.preprocess``); ``readout`` what the
    new output layer reads (``fit_readout``). The features are
    computed here (``adaptation_features``); the fit and the writing are ``bundle_from_features``'s. A reading
    ensemble is refused (its members' features differ): adapt one member folder."""
    if isinstance(bundle, ReadingEnsemble):
        raise not_single_bundle(bundle.path, bundle.names)
    bundle = bundle if isinstance(bundle, ClassifierBundle) else ClassifierBundle.load(bundle)
    x, y, classes, n_unreadable = adaptation_features(bundle, data, class_map, polarity=polarity, crop=crop,
                                                      progress=progress)
    return bundle_from_features(bundle, x, y, classes, out, preprocess=adaptation_preprocess(bundle, polarity, crop),
                                origin={"data": str(data), "class_map": str(class_map) if class_map else None},
                                readout=readout, seed=seed, extra={"n_unreadable": n_unreadable})

"""Few-shot adaptation to a new instrument: a new head on the frozen features, in seconds.

An ecologist who moves to another instrument labels a few dozen images per class and expects the
classifier to follow. The backbone stays frozen: the labelled images are read the way the bundle
reads images (its preprocessing, with the background's polarity decided per image, so dark-field
crops work with a bright-field model), their features computed once, and a multinomial logistic
regression fitted on them (scikit-learn, regularisation chosen by stratified cross-validation on the
labelled images themselves; ``probe.readout``). Temperature and unknown thresholds are fitted on the cross-validated
predictions, so no labelled image is spent twice. The result is a new bundle: same backbone, new
classes (the data's own, or the groups of a class map), new head.

What the regression reads (``readout``): the bundle's features, or, when the bundle's head is an MLP, its hidden
layer (``MLPHead.hidden``), trained on the source labels; the new head is then that hidden layer under a new output
layer. Measured on a dark-field instrument (13 groups, 5 draws): the hidden layer gains 0.02-0.07 macro F1 at
every number of labels from 1 to 50 per group and fits 3x faster (docs/adaptation.md). ``auto`` fits both on
the same folds and keeps the lower cross-validated log loss, so the labelled images decide, as they choose C.

``adapt_bundle`` is two steps: ``adaptation_features`` (read the images, compute their features) and
``bundle_from_features`` (fit with ``probe.readout.fit_readout``, calibrate, write the bundle). The validation
app (``app.export.export_bundle``) calls the second on its cached features, so a bundle from validated labels is
fitted, calibrated and written the same way.

Shapes: features (N, D); labels integer 0..C-1.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..data.dataset import default_cache_dir, load_images
from ..data.manifest import Manifest, open_dataset
from ..data.preprocess import Preprocess
from ..evaluate.crossdata import read_class_map
from ..probe.bundle import ClassifierBundle, not_single_bundle
from ..probe.calibration import fit_temperature, unknown_thresholds
from ..probe.ensemble import ReadingEnsemble
from ..probe.metrics import classification_metrics
from ..probe.readout import fit_readout
from ..utils import DiffprobeError, atomic_dir, write_json
from .config import AdaptConfig

log = logging.getLogger(__name__)


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

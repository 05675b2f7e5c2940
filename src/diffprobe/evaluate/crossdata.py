"""Evaluate a classifier bundle on another labelled dataset (folder, manifest CSV or EcoTaxa TSV).

Two ways to line up the data's classes with the model's:

- **by name** (default): a data class counts only if the model has a class of exactly that
  name. Images of other classes are skipped and counted per class (never guessed); they
  also serve as "unknowns" to measure how well the model flags classes it never saw.
- **by class map** (``--class-map``): a CSV ``group,model_pattern,data_pattern`` of shell-style
  patterns (``copepod,copepod_*,copepoda``; case-insensitive). The model's calibrated
  probabilities are summed over the model classes of each group and the prediction is the most
  probable group; data images whose class matches no data pattern are skipped and counted.
  This gives coarse (e.g. order-level) evaluation across datasets whose class lists differ.

Outputs: ``metrics.json``, ``confusion.png``, ``report.md`` (what each number means) and
``skipped.csv`` when files were unreadable.
"""

from __future__ import annotations

import csv
import logging
import warnings
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ..config.evaluate import EvaluateConfig
from ..data.manifest import SPLITS, Manifest, open_dataset
from ..probe.bundle import ClassifierBundle
from ..probe.calibration import expected_calibration_error
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..probe.metrics import chance_accuracy, classification_metrics, multiclass_log_loss
from ..report.plots import confusion_plot
from ..report.tables import evaluation_report
from ..utils import DiffprobeError, resolve_precision, write_json
from .abundance import abundance_error, estimate_shares, prior_shift_experiment
from .unknown import flag_unknown, openset_report, shift_warning

log = logging.getLogger(__name__)

MAP_COLUMNS = ("group", "model_pattern", "data_pattern")


@dataclass
class ClassMap:
    """Groups of model classes and data classes.

    groups:       group names, in the order of the CSV.
    model_groups: (C_model,) int, the group of each model class, -1 for none.
    data_groups:  {data class: group index} for the data classes any pattern matches.
    """

    groups: list[str]
    model_groups: np.ndarray
    data_groups: dict[str, int]

    def group_probs(self, probs: np.ndarray) -> np.ndarray:
        """(N, C_model) probabilities -> (N, G) summed per group."""
        onehot = np.zeros((len(self.model_groups), len(self.groups)))
        member = self.model_groups >= 0
        onehot[np.flatnonzero(member), self.model_groups[member]] = 1.0
        return probs @ onehot


def _matches(pattern: str, names: list[str]) -> list[str]:
    return [n for n in names if fnmatchcase(n.lower(), pattern.lower())]


def read_class_map(path: str | Path, model_classes: list[str], data_classes: list[str]) -> ClassMap:
    """Parse and check a class-map CSV against the model's and the data's classes."""
    path = Path(path)
    if not path.is_file():
        raise DiffprobeError(f"{path}: class map not found")
    groups: list[str] = []
    model_of: dict[str, str] = {}
    data_of: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MAP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DiffprobeError(f"{path}: missing column(s) {missing}; a class map needs the header "
                                 f"{','.join(MAP_COLUMNS)} (e.g. 'copepod,copepod_*,copepoda')")
        for line, row in enumerate(reader, start=2):
            group, mpat, dpat = ((row.get(c) or "").strip() for c in MAP_COLUMNS)
            if not (group and mpat and dpat):
                raise DiffprobeError(f"{path}, line {line}: every row needs a group, a model_pattern and a "
                                     f"data_pattern; got {group!r}, {mpat!r}, {dpat!r}")
            model_hits = _matches(mpat, model_classes)
            if not model_hits:
                raise DiffprobeError(f"{path}, line {line} (group {group!r}): model_pattern {mpat!r} matches no "
                                     f"class of the model; its classes include {model_classes[:8]}")
            if group not in groups:
                groups.append(group)
            for side, hits, owner in (("model", model_hits, model_of), ("data", _matches(dpat, data_classes),
                                                                         data_of)):
                for name in hits:
                    if owner.get(name, group) != group:
                        raise DiffprobeError(f"{path}, line {line}: {side} class {name!r} is in two groups, "
                                             f"{owner[name]!r} and {group!r}; make the patterns disjoint")
                    owner[name] = group
    if not groups:
        raise DiffprobeError(f"{path}: the class map has no rows")
    index = {g: k for k, g in enumerate(groups)}
    model_groups = np.array([index[model_of[c]] if c in model_of else -1 for c in model_classes])
    return ClassMap(groups, model_groups, {c: index[g] for c, g in data_of.items()})


def select_part(m: Manifest, part: str, where: str | Path) -> Manifest:
    """The images of one split part ("train", "val", "test") or all of them ("all")."""
    if part == "all":
        return m
    if part not in SPLITS:
        raise DiffprobeError(f"unknown part {part!r}; choose one of {SPLITS + ('all',)}")
    mask = m.split_mask(part)
    if not mask.any():
        raise DiffprobeError(f"{where}: no images in the {part!r} part; pass a split manifest ('diffprobe split') "
                             f"or use all images")
    return m.subset(mask)


def evaluate_bundle(bundle: ClassifierBundle | ReadingEnsemble | str | Path, data: str | Path, out_dir: str | Path, *,
                    class_map: str | Path | None = None, part: str = EvaluateConfig.part,
                    n_trials: int = EvaluateConfig.n_trials, seed: int = EvaluateConfig.seed,
                    size_scale: float | str | None = None, progress: bool = True) -> dict:
    """Metrics of ``bundle`` on the labelled dataset ``data``; writes metrics.json, confusion.png,
    report.md to ``out_dir`` and returns the metrics. ``bundle``: a bundle, a reading ensemble or the folder of
    either. ``size_scale``: the pixel scale of ``data``'s object sizes (``ClassifierBundle.size_scale``: None as
    measured, a number, or "auto")."""
    bundle = load_bundle(bundle) if isinstance(bundle, (str, Path)) else bundle
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = select_part(open_dataset(data, labelled=True), part, data)
    if part == "all" and "train" in m.splits:
        log.warning("%s has a split: evaluating all of it includes images the probe was trained on; "
                    "pass part='test' (--part test) for honest numbers", data)
    data_classes = m.classes
    if class_map is None:
        targets = bundle.classes
        target_of = {c: bundle.classes.index(c) for c in data_classes if c in bundle.classes}
        if not target_of:
            raise DiffprobeError(f"{data}: none of its {len(data_classes)} classes ({data_classes[:6]} ...) is a "
                                 f"class of the model ({bundle.classes[:6]} ...); pass --class-map to group them")
        cmap = None
    else:
        cmap = read_class_map(class_map, bundle.classes, data_classes)
        targets, target_of = cmap.groups, cmap.data_groups
        if not target_of:
            raise DiffprobeError(f"{class_map}: no data_pattern matches a class of {data} ({data_classes[:6]} ...)")
    skipped_by_class = {c: n for c, n in m.counts().items() if c not in target_of}
    if cmap is not None:
        # Only images that belong to a group are worth classifying in map mode.
        m = m.subset([lab in target_of for lab in m.labels])

    arr = bundle.read_split(m, report_dir=out, classes=data_classes, progress=progress)
    data_label = np.array([data_classes[k] for k in arr.labels], dtype=object)
    known = np.array([c in target_of for c in data_label], dtype=bool)
    scale = bundle.size_scale(arr.meta, size_scale)
    logits = bundle.logits(arr.images, arr.meta, progress=progress, size_scale=scale)
    y = np.array([target_of[c] for c in data_label[known]], dtype=np.int64)
    z = logits[known]

    if cmap is None:
        before, after = softmax(z, axis=1), softmax(z / bundle.temperature, axis=1)
    else:
        before, after = (_renormalise(cmap.group_probs(softmax(z / t, axis=1))) for t in (1.0, bundle.temperature))
    pred = after.argmax(1)
    with warnings.catch_warnings():
        # Predicting a class this data lacks is expected on another dataset, not worth a warning.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        closed = classification_metrics(y, pred)
    res = {"bundle": str(bundle.path), "data": str(data), "part": part,
           "mode": "class names" if cmap is None else "class map", "class_map": str(class_map) if class_map else None,
           **closed, "chance_accuracy": chance_accuracy(y),
           "n_images": int(known.sum()), "n_skipped": int(sum(skipped_by_class.values())),
           "skipped_by_class": skipped_by_class, "n_unreadable": len(arr.skipped),
           "log_loss": multiclass_log_loss(y, after), "size_scale": scale, "precision": resolve_precision(bundle.precision, bundle.backbone.device),
           "calibration": {"temperature": bundle.temperature, "ece_before": expected_calibration_error(before, y),
                           "ece_after": expected_calibration_error(after, y)},
           "per_class": _per_class(y, pred, targets)}
    flags = flag_unknown(z, bundle.meta)
    if flags is not None:
        res["flagged_unknown_share"] = float(flags.mean())
    res["shift_warning"] = shift_warning(logits, bundle.meta)
    if res["shift_warning"]:
        log.warning("%s", res["shift_warning"])
    if cmap is None:
        if (~known).any():
            res["openset"] = openset_report(z, logits[~known], bundle.meta)
        res["abundance"] = _abundance(after, y, bundle.meta, n_trials=n_trials, seed=seed)

    shown = sorted(set(y.tolist()) | set(pred.tolist()))
    cm = confusion_matrix(y, pred, labels=shown)
    confusion_plot(cm, [targets[k] for k in shown], out / "confusion.png",
                   title=f"{Path(data).name}: accuracy {res['accuracy']:.1%}, macro F1 {res['macro_f1']:.3f}")
    write_json(out / "metrics.json", res)
    (out / "report.md").write_text(evaluation_report(res))
    return res


def _renormalise(p: np.ndarray) -> np.ndarray:
    """Group probabilities conditioned on the image being in one of the groups."""
    return p / np.clip(p.sum(1, keepdims=True), 1e-12, None)


def _per_class(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict:
    """Precision, recall, F1 and counts for every class present in the data or predicted."""
    labels = sorted(set(y.tolist()) | set(pred.tolist()))
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    n_pred = np.bincount(pred, minlength=len(names))
    return {names[k]: {"n": int(n[i]), "n_predicted": int(n_pred[k]), "precision": float(p[i]),
                       "recall": float(r[i]), "f1": float(f[i])} for i, k in enumerate(labels)}


def _abundance(probs: np.ndarray, y: np.ndarray, meta: dict, *, n_trials: int, seed: int) -> dict:
    """Share estimates on the data as it is, and their error under synthetic prior shift."""
    kw = {"val_confusion": meta.get("val_confusion"), "train_counts": meta.get("train_class_counts")}
    truth = np.bincount(y, minlength=probs.shape[1]) / len(y)
    est = estimate_shares(probs, **kw)
    out = {"error": {k: abundance_error(v, truth) for k, v in est.items()},
           "prior_shift": prior_shift_experiment(probs, y, n_trials=n_trials, seed=seed, **kw)}
    if kw["val_confusion"] is None:
        out["note"] = "no val confusion matrix in the bundle: run 'diffprobe calibrate' to enable ACC"
    return out

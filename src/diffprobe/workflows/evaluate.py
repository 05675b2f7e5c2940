"""The ``evaluate`` command: a classifier bundle (or reading ensemble) on another labelled dataset (folder,
manifest CSV or EcoTaxa TSV), its classes lined up with the model's by name or by a class map
(``evaluate.crossdata``, which says how).

Outputs: ``metrics.json``, ``confusion.png``, ``report.md`` (what each number means) and
``skipped.csv`` when files were unreadable.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from scipy.special import softmax
from sklearn.metrics import confusion_matrix

from ..config.evaluate import EvaluateConfig
from ..data.manifest import open_dataset
from ..evaluate.abundance import abundance_errors
from ..evaluate.crossdata import condition_on_groups, per_class_metrics, read_class_map, select_part
from ..evaluate.unknown import flag_unknown, openset_report, shift_warning
from ..probe.bundle import ClassifierBundle
from ..probe.calibration import expected_calibration_error
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..probe.metrics import chance_accuracy, classification_metrics, multiclass_log_loss
from ..report.plots import confusion_plot
from ..report.tables import evaluation_report
from ..utils import DiffprobeError, resolve_precision, write_json

log = logging.getLogger(__name__)


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
        before, after = (condition_on_groups(cmap.group_probs(softmax(z / t, axis=1)))
                         for t in (1.0, bundle.temperature))
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
           "per_class": per_class_metrics(y, pred, targets)}
    flags = flag_unknown(z, bundle.meta)
    if flags is not None:
        res["flagged_unknown_share"] = float(flags.mean())
    res["shift_warning"] = shift_warning(logits, bundle.meta)
    if res["shift_warning"]:
        log.warning("%s", res["shift_warning"])
    if cmap is None:
        if (~known).any():
            res["openset"] = openset_report(z, logits[~known], bundle.meta)
        res["abundance"] = abundance_errors(after, y, bundle.meta, n_trials=n_trials, seed=seed)

    shown = sorted(set(y.tolist()) | set(pred.tolist()))
    cm = confusion_matrix(y, pred, labels=shown)
    confusion_plot(cm, [targets[k] for k in shown], out / "confusion.png",
                   title=f"{Path(data).name}: accuracy {res['accuracy']:.1%}, macro F1 {res['macro_f1']:.3f}")
    write_json(out / "metrics.json", res)
    (out / "report.md").write_text(evaluation_report(res))
    return res

"""What a project gives back: its current labels as an EcoTaxa TSV (importable, and readable by ``data.ecotaxa``)
or a plain CSV, and a new classifier bundle fitted on its validated labels (``export_bundle``)."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..probe import ClassifierBundle
from ..utils import DiffprobeError
from ..workflows.adapt import bundle_from_features
from .config import BundleConfig
from .project import Project

BUNDLE_DIR = "bundle"  # the project's own bundle folder (the app's Bundle button writes there)

# EcoTaxa's columns, then ours (free object_ columns, as EcoTaxa imports them); the second row gives their types.
TSV_COLUMNS = {"object_id": "[t]", "img_file_name": "[t]", "img_rank": "[f]", "sample_id": "[t]",
               "object_annotation_category": "[t]", "object_annotation_status": "[t]",
               "object_annotation_person_name": "[t]", "object_annotation_date": "[t]",
               "object_annotation_time": "[t]", "object_diffprobe_prediction": "[t]",
               "object_diffprobe_probability": "[f]"}
CSV_COLUMNS = ("id", "object_id", "path", "sample", "label", "status", "predicted_label", "probability", "user",
               "time")


def _rows(project: Project) -> list[dict]:
    last = project.store.last_decisions()
    return [{**o, "user": last.get(o["id"], {}).get("user", ""), "time": last.get(o["id"], {}).get("time", "")}
            for o in project.store.all_objects()]


def ecotaxa_tsv(project: Project) -> str:
    """One row per object: its current category and status, who set it and when (empty while predicted)."""
    out = io.StringIO()
    w = csv.writer(out, delimiter="\t", lineterminator="\n")
    w.writerow(TSV_COLUMNS)
    w.writerow(TSV_COLUMNS.values())
    for r in _rows(project):
        when = datetime.fromisoformat(r["time"]) if r["time"] else None
        w.writerow([r["object_id"], r["path"], 0, r["sample"], r["label"], r["status"], r["user"],
                    when.strftime("%Y%m%d") if when else "", when.strftime("%H%M%S") if when else "",
                    r["predicted_label"], f"{r['probability']:.6f}"])
    return out.getvalue()


def labels_csv(project: Project) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in _rows(project):
        w.writerow({**r, "path": str(project.image_file(r["path"])), "probability": f"{r['probability']:.6f}"})
    return out.getvalue()


def export_bundle(project: Project, out: str | Path | None = None, *,
                  min_per_class: int = BundleConfig.min_per_class, seed: int = BundleConfig.seed) -> dict:
    """A new classifier bundle from the project's validated labels, written to ``out`` (default: the project's
    ``bundle/`` folder; replaced atomically). The project's bundle with a new head fitted on the cached features of
    the validated images, exactly as few-shot adaptation fits one (``workflows.adapt.bundle_from_features``):
    logistic regression, temperature and unknown thresholds on cross-validated predictions; no image is read.
    Classes people added in the app are classes of the new bundle like the model's own. A class with fewer than
    ``min_per_class`` validated images is left out (and named); fewer than 2 classes left is refused. ``adapted``
    in its ``bundle.json`` (and ``adapt.json``) says where the labels came from: the project, the validated
    images per class, the time. Returns that summary with ``path``, ``left_out`` and ``seconds``."""
    if min_per_class < 2:
        raise DiffprobeError(f"min_per_class must be at least 2 (the cross-validation needs 2 images of each "
                             f"class), got {min_per_class}")
    started = time.perf_counter()
    ids, labels = project.store.validated()
    counts = Counter(labels)
    order = project.store.classes()
    classes = [c for c in order if counts.get(c, 0) >= min_per_class]
    short = {c: counts[c] for c in order if 0 < counts.get(c, 0) < min_per_class}  # validated, but too few
    if len(classes) < 2:
        so_far = ", ".join(f"{c} {n}" for c, n in counts.most_common()) or "none"
        raise DiffprobeError(f"a bundle needs at least 2 classes with {min_per_class} or more validated images each "
                             f"(its temperature and unknown thresholds are fitted on cross-validated predictions); "
                             f"validated so far: {so_far}")
    keep = [k for k, lab in enumerate(labels) if lab in classes]
    rows = np.asarray(ids, np.int64)[keep]
    x = np.asarray(project.features()[rows], np.float32)
    y = np.asarray([classes.index(labels[k]) for k in keep])
    model = Path(project.info["model"])
    try:
        bundle = ClassifierBundle.load(model)
    except DiffprobeError as e:
        raise DiffprobeError(f"the project's bundle ({model}, the 'model' of {project.root / 'project.json'}) "
                             f"cannot be opened: {e}") from None
    try:
        bundle.head.logits(x[:1])
    except Exception:  # noqa: BLE001 - any shape error: the features were not made by this bundle
        raise DiffprobeError(f"{model}: its head does not read this project's {x.shape[1]}-D features; was the "
                             f"bundle replaced after 'diffprobe app init'?") from None
    out = Path(out) if out is not None else project.root / BUNDLE_DIR
    origin = {"project": project.name, "project_dir": str(project.root),
              "labels": "validated images of the app project",
              "time": datetime.now(UTC).isoformat(timespec="seconds"), "min_per_class": min_per_class,
              "left_out": short}
    summary = bundle_from_features(bundle, x, y, classes, out, origin=origin, seed=seed,
                                   evaluated_on=f"the validated images of app project {project.name}")
    return {**summary, "path": str(out), "seconds": round(time.perf_counter() - started, 2)}

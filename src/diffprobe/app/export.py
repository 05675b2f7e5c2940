"""The project's current labels as an EcoTaxa TSV (importable, and readable by ``data.ecotaxa``) or a plain CSV."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from .project import Project

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

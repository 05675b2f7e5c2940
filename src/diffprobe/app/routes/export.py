"""Export: the labels as EcoTaxa TSV and as CSV, and a classifier bundle fitted on the validated labels."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from .. import export
from ..config import BundleConfig
from .shared import CurrentProject, HeavyLock


class BundleRequest(BaseModel):
    min_per_class: int = Field(BundleConfig.min_per_class, ge=2, le=100_000)


def attachment(name: str) -> dict:
    """The headers that make a browser save the answer as the file ``name``."""
    return {"Content-Disposition": f"attachment; filename={json.dumps(name)}"}


router = APIRouter()


@router.get("/api/export.tsv")
def export_tsv(project: CurrentProject):
    return PlainTextResponse(export.ecotaxa_tsv(project), media_type="text/tab-separated-values",
                             headers=attachment(f"{project.name}_ecotaxa.tsv"))


@router.get("/api/export.csv")
def export_csv(project: CurrentProject):
    return PlainTextResponse(export.labels_csv(project), media_type="text/csv",
                             headers=attachment(f"{project.name}_labels.csv"))


@router.post("/api/export/bundle")
def export_bundle(project: CurrentProject, heavy: HeavyLock, request: BundleRequest | None = None):
    """A classifier bundle fitted on the validated labels, written to the project's own ``bundle/`` folder
    (no path is taken from the request); the answer names it."""
    with heavy:
        r = export.export_bundle(project, min_per_class=(request or BundleRequest()).min_per_class)
    return {"path": r["path"], "classes": list(r["per_class"]), "per_class": r["per_class"],
            "left_out": r["left_out"], "min_per_class": r["min_per_class"], "n_images": r["n_images"],
            "temperature": round(r["temperature"], 4),
            "cross_validated_accuracy": round(r["cross_validated"]["accuracy"], 4), "time": r["time"],
            "seconds": r["seconds"]}

"""Retraining on the validated labels: retrain, preview a retrain, go back to the bundle's model, and what the
latest retrain changed."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from ...utils import read_json
from .. import learn
from ..project import LAST_RETRAIN_FILE, Project
from .shared import MAX_PAGE, MAX_PAGE_NUMBER, CurrentProject, CurrentUser, HeavyLock, public

router = APIRouter()


@router.post("/api/retrain")
def retrain(project: CurrentProject, user: CurrentUser, heavy: HeavyLock):
    with heavy:
        return learn.retrain(project, user=user)


@router.get("/api/retrain/preview")
def preview_retrain(project: CurrentProject, user: CurrentUser, heavy: HeavyLock):
    """What a retrain now would do (its effect on the validated images, the predictions it would move),
    changing nothing."""
    with heavy:
        return learn.retrain(project, user=user, apply=False)


@router.post("/api/retrain/undo")
def back_to_model(project: CurrentProject, user: CurrentUser, heavy: HeavyLock):
    """Undo the retrains: the bundle's own predictions again."""
    with heavy:
        return learn.back_to_model(project, user=user)


def last_retrain(project: Project) -> dict:
    if not (project.root / LAST_RETRAIN_FILE).is_file():
        raise HTTPException(404, "no retrain yet: validate images of at least 2 classes, then POST /api/retrain")
    return read_json(project.root / LAST_RETRAIN_FILE)


@router.get("/api/changes")
def changes(project: CurrentProject):
    last = last_retrain(project)
    return {"n_changed": last["n_changed"],
            "transitions": [{k: t[k] for k in ("from", "to", "n")} for t in last["transitions"]]}


@router.get("/api/changes/objects")
def changed_objects(project: CurrentProject, from_label: str = Query(alias="from"),
                    to_label: str = Query(alias="to"), page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER),
                    per_page: int = Query(100, ge=1, le=MAX_PAGE)):
    found = [t for t in last_retrain(project)["transitions"] if (t["from"], t["to"]) == (from_label, to_label)]
    if not found:
        raise HTTPException(404, f"the latest retrain moved no prediction from {from_label!r} to {to_label!r}; "
                                 f"GET /api/changes lists the moves")
    ids = found[0]["ids"]
    _, rows = project.store.page(None, ids=ids, offset=page * per_page, limit=per_page)
    return {"total": len(ids), "page": page, "per_page": per_page, "objects": [public(r) for r in rows]}

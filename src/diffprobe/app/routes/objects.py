"""The objects: a page of them, one, its nearest neighbours, its image, and the ones to look at next."""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from PIL import Image

from ...data import ImageReadError, read_image
from .. import learn
from ..store import SORTS, STATUSES
from .shared import MAX_INT, MAX_PAGE, MAX_PAGE_NUMBER, CurrentProject, HeavyLock, check_label, object_or_404, public

router = APIRouter()


@router.get("/api/objects")
def objects(project: CurrentProject, label: str | None = None,
            status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
            sort: Literal[SORTS] = "confidence",  # type: ignore[valid-type]
            page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER),
            per_page: int = Query(100, ge=1, le=MAX_PAGE)):
    check_label(project, label)
    total, rows = project.store.page(label, status=status, sort=sort, offset=page * per_page, limit=per_page)
    return {"total": total, "page": page, "per_page": per_page, "objects": [public(r) for r in rows]}


@router.get("/api/objects/{object_id}")
def one_object(project: CurrentProject, object_id: int = PathParam(ge=0, le=MAX_INT)):
    return public(object_or_404(project, object_id))


@router.get("/api/objects/{object_id}/neighbours")
def object_neighbours(project: CurrentProject, heavy: HeavyLock, object_id: int = PathParam(ge=0, le=MAX_INT),
                      n: int = Query(12, ge=1, le=MAX_PAGE)):
    """The objects that look most like this one (nearest in the project's embedding), nearest first."""
    object_or_404(project, object_id)
    with heavy:  # the embedding is made on first use
        ids = learn.neighbours(project, object_id, n)
    _, rows = project.store.page(None, ids=ids, limit=n)
    return {"id": object_id, "objects": [public(r) for r in rows]}


@router.get("/api/objects/{object_id}/image")
def image(project: CurrentProject, object_id: int = PathParam(ge=0, le=MAX_INT)):
    row = object_or_404(project, object_id)
    try:
        grey = read_image(project.image_file(row["path"]))
    except ImageReadError as e:
        raise HTTPException(404, f"object {object_id}: its image cannot be read ({e.reason})") from None
    buf = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(buf, format="PNG")
    return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


@router.get("/api/next")
def next_to_look(project: CurrentProject, heavy: HeavyLock, n: int = Query(100, ge=1, le=MAX_PAGE),
                 measure: Literal[learn.MEASURES] = "margin"):  # type: ignore[valid-type]
    with heavy:
        found = learn.next_to_look(project, n, measure=measure)
    _, rows = project.store.page(None, ids=found["ids"], limit=n)
    return {"measure": measure, "n_candidates": found["n_candidates"], "total": len(rows), "page": 0,
            "per_page": n, "objects": [public(r) for r in rows]}

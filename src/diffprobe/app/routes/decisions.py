"""The decisions people make: deciding on objects (refused with 409 when made on an older version of one), undoing
a user's latest decision, and the history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..store import ACTIONS
from .shared import MAX_INT, CurrentProject, CurrentUser

Id = Annotated[int, Field(ge=0, le=MAX_INT)]


class Decision(BaseModel):
    ids: list[Id] = Field(min_length=1, max_length=100_000)
    action: Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
    label: str | None = None
    new_class: bool = False
    versions: list[Id] | None = None  # of each object as the client read it (the page always sends them)


router = APIRouter()


@router.post("/api/decisions")
def decide(decision: Decision, project: CurrentProject, user: CurrentUser):
    return project.store.decide(decision.ids, decision.action, user=user, label=decision.label,
                                new_class=decision.new_class, versions=decision.versions)


@router.post("/api/undo")
def undo(project: CurrentProject, user: CurrentUser):
    return project.store.undo(user=user)


@router.get("/api/history")
def history(project: CurrentProject, limit: int = Query(50, ge=1, le=1000)):
    return project.store.history(limit)

"""The dashboard: what the model's counts are worth, judged by what people validated (``app.dashboard``)."""

from __future__ import annotations

from fastapi import APIRouter

from .. import dashboard
from .shared import CurrentProject

router = APIRouter()


@router.get("/api/dashboard")
def dashboard_numbers(project: CurrentProject):
    return dashboard.summary(project)

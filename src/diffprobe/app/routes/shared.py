"""What the routers share: the project, the user and the lock of heavy work as dependencies (read from the app's
``state``, which ``server.create_app`` fills), the bounds of ids and pages, and the helpers that look an object or
a class up or show an object."""

from __future__ import annotations

from threading import Lock
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from ..project import Project

MAX_PAGE = 500
MAX_INT = 2**63 - 1  # SQLite's integers are 64-bit: larger ids would fail in the database, not as a 4xx
MAX_PAGE_NUMBER = MAX_INT // MAX_PAGE


def current_project(request: Request) -> Project:
    """The project the app serves."""
    return request.app.state.project


def current_user(request: Request, x_diffprobe_user: Annotated[str | None, Header()] = None) -> str:
    """Who decides: the ``X-Diffprobe-User`` header (its first 100 characters), else the app's default user."""
    name = (x_diffprobe_user or "").strip()
    return name[:100] if name else request.app.state.default_user


def heavy_lock(request: Request) -> Lock:
    """The app's lock that lets one retrain or clustering run at a time."""
    return request.app.state.heavy


CurrentProject = Annotated[Project, Depends(current_project)]
CurrentUser = Annotated[str, Depends(current_user)]
HeavyLock = Annotated[Lock, Depends(heavy_lock)]


def object_or_404(project: Project, object_id: int) -> dict:
    row = project.store.get(object_id)
    if row is None:
        raise HTTPException(404, f"no object {object_id} in this project ({project.store.n_objects()} objects, "
                                 f"ids 0..{project.store.n_objects() - 1})")
    return row


def check_label(project: Project, label: str | None) -> None:
    if label is not None and label not in project.store.classes():
        raise HTTPException(404, f"no class {label!r} in this project; GET /api/project lists the classes")


def public(row: dict) -> dict:
    """An object as the browser sees it: no file path (it asks for the image by id)."""
    return {k: v for k, v in row.items() if k != "path"}

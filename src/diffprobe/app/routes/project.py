"""The project and its classes: what the page asks for first, the class tree, removing an empty class."""

from __future__ import annotations

from fastapi import APIRouter

from .. import taxonomy
from ..store import SORTS, STATUSES
from .shared import CurrentProject, CurrentUser

router = APIRouter()


@router.get("/api/project")
def describe(project: CurrentProject, user: CurrentUser):
    return {"name": project.name, "n_objects": project.store.n_objects(), "classes": project.store.class_counts(),
            "statuses": STATUSES, "sorts": SORTS, "user": user, "model": project.info["model"],
            "images": project.info["images"], "retrains": project.store.retrains()}


@router.get("/api/classes/tree")
def class_tree(project: CurrentProject):
    """The classes as a tree (the project's taxonomy file, else the class names), counts summed over children."""
    return taxonomy.class_tree(project.store.class_counts(), project.taxonomy())


@router.delete("/api/classes/{name:path}")
def remove_class(name: str, project: CurrentProject):
    """Remove a class people added that is empty (a typo, a name an older version accepted)."""
    project.store.remove_class(name)
    return {"removed": name, "classes": project.store.class_counts()}

"""Clusters of the uncertain images (MorphoCluster style): make them, list them, page through one, split or grow
one, and name one (validate its undecided members as a class). The latest clusters are kept in the project's
``clusters.json``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ...utils import read_json, write_json
from .. import learn
from ..project import Project
from ..store import MAX_CLASS_NAME
from .shared import MAX_INT, MAX_PAGE, MAX_PAGE_NUMBER, CurrentProject, CurrentUser, HeavyLock, public

CLUSTERS_FILE = "clusters.json"
ClusterNumber = Annotated[int, PathParam(ge=0, le=MAX_INT)]


class ClusterRequest(BaseModel):
    k: int = Field(8, ge=2, le=200)
    max_probability: float = Field(0.8, gt=0, le=1)
    method: Literal[learn.CLUSTER_METHODS] = "kmeans"  # type: ignore[valid-type]
    min_cluster_size: int = Field(5, ge=2, le=10_000)  # HDBSCAN's


class GrowRequest(BaseModel):
    n: int = Field(20, ge=1, le=MAX_PAGE)


class NameRequest(BaseModel):
    label: str = Field(min_length=1, max_length=MAX_CLASS_NAME)
    new_class: bool = False


def cluster_summary(project: Project, result: dict) -> dict:
    """The clusters without their members; ``n_left``: members still ``predicted`` (0: named, all decided)."""
    undecided = set(project.store.uncertain_ids())
    return {**{k: v for k, v in result.items() if k != "clusters"},
            "clusters": [{"cluster": c["cluster"], "size": c["size"], "preview": c["ids"][:5],
                          "grown": len(c.get("grown", [])), "n_left": len(undecided.intersection(c["ids"]))}
                         for c in result["clusters"]]}


def saved_clusters(project: Project) -> dict:
    if not (project.root / CLUSTERS_FILE).is_file():
        raise HTTPException(404, "no clusters yet: POST /api/clusters (the Clusters view's Make clusters button)")
    return read_json(project.root / CLUSTERS_FILE)


def one_cluster(result: dict, number: int) -> dict:
    found = [c for c in result["clusters"] if c["cluster"] == number]
    if not found:
        raise HTTPException(404, f"no cluster {number}; GET /api/clusters lists them")
    return found[0]


router = APIRouter()


@router.post("/api/clusters")
def make_clusters(request: ClusterRequest, project: CurrentProject, heavy: HeavyLock):
    with heavy:
        result = learn.cluster(project, k=request.k, max_probability=request.max_probability,
                               method=request.method, min_cluster_size=request.min_cluster_size)
        write_json(project.root / CLUSTERS_FILE, result)
    return cluster_summary(project, result)


@router.get("/api/clusters")
def clusters(project: CurrentProject):
    return cluster_summary(project, saved_clusters(project))


@router.get("/api/clusters/{number}/objects")
def cluster_objects(number: ClusterNumber, project: CurrentProject, part: Literal["all", "grown"] = "all",
                    page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER),
                    per_page: int = Query(100, ge=1, le=MAX_PAGE)):
    found = one_cluster(saved_clusters(project), number)
    ids = found["ids"] if part == "all" else found.get("grown", [])
    _, rows = project.store.page(None, ids=ids, offset=page * per_page, limit=per_page)
    return {"total": len(ids), "page": page, "per_page": per_page, "objects": [public(r) for r in rows]}


@router.post("/api/clusters/{number}/split")
def split_cluster(number: ClusterNumber, project: CurrentProject, heavy: HeavyLock):
    with heavy:
        result = saved_clusters(project)
        one_cluster(result, number)
        made = learn.split_cluster(project, result, number)
        write_json(project.root / CLUSTERS_FILE, result)
    return {**cluster_summary(project, result), "made": made}


@router.post("/api/clusters/{number}/grow")
def grow_cluster(number: ClusterNumber, request: GrowRequest, project: CurrentProject, heavy: HeavyLock):
    with heavy:
        result = saved_clusters(project)
        one_cluster(result, number)
        added = learn.grow_cluster(project, result, number, request.n)
        write_json(project.root / CLUSTERS_FILE, result)
    return {**cluster_summary(project, result), "added": added}


@router.post("/api/clusters/{number}/name")
def name_cluster(number: ClusterNumber, request: NameRequest, project: CurrentProject, user: CurrentUser):
    """Validate every member still ``predicted`` as ``label``; members people decided on already are kept."""
    ids = one_cluster(saved_clusters(project), number)["ids"]
    _, undecided = project.store.page(None, status="predicted", ids=ids, limit=len(ids))
    if not undecided:
        raise HTTPException(400, f"cluster {number} has no image left to name: every member is validated or "
                                 f"dubious already")
    done = project.store.decide([r["id"] for r in undecided], "move", user=user,
                                label=request.label.strip(), new_class=request.new_class)
    return {**done, "kept": len(ids) - len(undecided)}

"""The web app: a JSON API over a project (FastAPI) and the plain HTML/JS/CSS of ``static/`` that uses it.

Safe by default: ``serve`` binds 127.0.0.1; any other interface needs a token (sent as ``Authorization: Bearer``,
or once as ``?token=`` in the address, which sets a cookie). Requests naming another host are refused (no DNS
rebinding onto a local server), and so is every state-changing request a browser sends from another site
(``Sec-Fetch-Site``, else ``Origin`` against ``Host``, as Go's ``http.CrossOriginProtection`` checks them): a
page elsewhere cannot undo, retrain or decide through the user's browser. A decision names the version of each
object it was made on; one made on an older version is refused with 409 and the objects as they are now.
Images are served by object id from the store, never by a path from the request, so only the project's own images
can be read; the one thing it writes besides the store and its own files is a new bundle, always into the
project's ``bundle/`` folder. Errors are 4xx with a message that says what to change.
"""

from __future__ import annotations

import getpass
import hmac
import io
import ipaddress
import json
import threading
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..data.io import ImageReadError, read_image
from ..utils import DiffprobeError, read_json, write_json
from . import dashboard, export, learn, taxonomy
from .config import BundleConfig, ServeConfig
from .project import LAST_RETRAIN_FILE, Project
from .store import ACTIONS, MAX_CLASS_NAME, SORTS, STATUSES, StaleError

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "diffprobe_token"
CLUSTERS_FILE = "clusters.json"
MAX_PAGE = 500
MAX_INT = 2**63 - 1  # SQLite's integers are 64-bit: larger ids would fail in the database, not as a 4xx
MAX_PAGE_NUMBER = MAX_INT // MAX_PAGE
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
Id = Annotated[int, Field(ge=0, le=MAX_INT)]
ClusterNumber = Annotated[int, PathParam(ge=0, le=MAX_INT)]


class Decision(BaseModel):
    ids: list[Id] = Field(min_length=1, max_length=100_000)
    action: Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
    label: str | None = None
    new_class: bool = False
    versions: list[Id] | None = None  # of each object as the client read it (the page always sends them)


class ClusterRequest(BaseModel):
    k: int = Field(8, ge=2, le=200)
    max_probability: float = Field(0.8, gt=0, le=1)
    method: Literal[learn.CLUSTER_METHODS] = "kmeans"  # type: ignore[valid-type]
    min_cluster_size: int = Field(5, ge=2, le=10_000)  # HDBSCAN's


class GrowRequest(BaseModel):
    n: int = Field(20, ge=1, le=MAX_PAGE)


class BundleRequest(BaseModel):
    min_per_class: int = Field(BundleConfig.min_per_class, ge=2, le=100_000)


class NameRequest(BaseModel):
    label: str = Field(min_length=1, max_length=MAX_CLASS_NAME)
    new_class: bool = False


def current_project(request: Request) -> Project:
    """The project the app serves (a dependency of the routers' routes)."""
    return request.app.state.project


classes_router = APIRouter(prefix="/api/classes")


@classes_router.get("/tree")
def class_tree(project: Annotated[Project, Depends(current_project)]):
    """The classes as a tree (the project's taxonomy file, else the class names), counts summed over children."""
    return taxonomy.class_tree(project.store.class_counts(), project.taxonomy())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(headers) -> bool:
    """Whether a request comes from the app's own pages, or from no browser at all (scripts send neither header;
    browsers send ``Sec-Fetch-Site`` or at least ``Origin`` with every cross-site POST)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")  # none: typed into the address bar, a bookmark
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc == headers.get("host")


def create_app(project: Project, *, token: str | None = None, user: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app over an opened project. ``token``: required on every request when set. ``user``: who decides
    (default the login name; a request may name someone else with the ``X-Diffprobe-User`` header)."""
    app = FastAPI(title="diffprobe app", docs_url=None, redoc_url=None, openapi_url=None)
    default_user = user or getpass.getuser()
    heavy = threading.Lock()  # one retrain or clustering at a time
    app.state.project = project

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def _refuse_cross_site(request: Request, call_next):
        if request.method not in SAFE_METHODS and not same_origin(request.headers):
            source = request.headers.get("origin") or f"Sec-Fetch-Site: {request.headers.get('sec-fetch-site')}"
            return JSONResponse({"detail": f"cross-site request refused: {request.method} {request.url.path} came "
                                           f"from another site ({source}); only the app's own page may change the "
                                           f"project"}, status_code=403)
        return await call_next(request)

    if token:
        @app.middleware("http")
        async def _require_token(request: Request, call_next):
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.cookies.get(TOKEN_COOKIE) or request.query_params.get("token") or "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token: open the address printed by 'diffprobe "
                                               "app' (it ends in ?token=...), or send 'Authorization: Bearer "
                                               "TOKEN'"}, status_code=401)
            response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return response

    @app.exception_handler(DiffprobeError)
    async def _user_error(_request, e: DiffprobeError):
        return JSONResponse({"detail": str(e)}, status_code=400)

    @app.exception_handler(StaleError)
    async def _stale(_request, e: StaleError):
        return JSONResponse({"detail": str(e), "current": [_public(o) for o in e.current]}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request, e: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
                             for err in e.errors())
        return JSONResponse({"detail": f"bad request: {problems}"}, status_code=422)

    def who(x_diffprobe_user: str | None) -> str:
        name = (x_diffprobe_user or "").strip()
        return name[:100] if name else default_user

    def object_or_404(object_id: int) -> dict:
        row = project.store.get(object_id)
        if row is None:
            raise HTTPException(404, f"no object {object_id} in this project ({project.store.n_objects()} objects, "
                                     f"ids 0..{project.store.n_objects() - 1})")
        return row

    def check_label(label: str | None) -> None:
        if label is not None and label not in project.store.classes():
            raise HTTPException(404, f"no class {label!r} in this project; GET /api/project lists the classes")

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/project")
    def describe(x_diffprobe_user: str | None = Header(None)):
        return {"name": project.name, "n_objects": project.store.n_objects(), "classes": project.store.class_counts(),
                "statuses": STATUSES, "sorts": SORTS, "user": who(x_diffprobe_user), "model": project.info["model"],
                "images": project.info["images"], "retrains": project.store.retrains()}

    app.include_router(classes_router)

    @app.delete("/api/classes/{name:path}")
    def remove_class(name: str):
        """Remove a class people added that is empty (a typo, a name an older version accepted)."""
        project.store.remove_class(name)
        return {"removed": name, "classes": project.store.class_counts()}

    @app.get("/api/objects")
    def objects(label: str | None = None, status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
                sort: Literal[SORTS] = "confidence",  # type: ignore[valid-type]
                page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER),
                per_page: int = Query(100, ge=1, le=MAX_PAGE)):
        check_label(label)
        total, rows = project.store.page(label, status=status, sort=sort, offset=page * per_page, limit=per_page)
        return {"total": total, "page": page, "per_page": per_page, "objects": [_public(r) for r in rows]}

    @app.get("/api/objects/{object_id}")
    def one_object(object_id: int = PathParam(ge=0, le=MAX_INT)):
        return _public(object_or_404(object_id))

    @app.get("/api/objects/{object_id}/neighbours")
    def object_neighbours(object_id: int = PathParam(ge=0, le=MAX_INT), n: int = Query(12, ge=1, le=MAX_PAGE)):
        """The objects that look most like this one (nearest in the project's embedding), nearest first."""
        object_or_404(object_id)
        with heavy:  # the embedding is made on first use
            ids = learn.neighbours(project, object_id, n)
        _, rows = project.store.page(None, ids=ids, limit=n)
        return {"id": object_id, "objects": [_public(r) for r in rows]}

    @app.get("/api/objects/{object_id}/image")
    def image(object_id: int = PathParam(ge=0, le=MAX_INT)):
        row = object_or_404(object_id)
        try:
            grey = read_image(project.image_file(row["path"]))
        except ImageReadError as e:
            raise HTTPException(404, f"object {object_id}: its image cannot be read ({e.reason})") from None
        buf = io.BytesIO()
        Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post("/api/decisions")
    def decide(decision: Decision, x_diffprobe_user: str | None = Header(None)):
        return project.store.decide(decision.ids, decision.action, user=who(x_diffprobe_user), label=decision.label,
                                    new_class=decision.new_class, versions=decision.versions)

    @app.post("/api/undo")
    def undo(x_diffprobe_user: str | None = Header(None)):
        return project.store.undo(user=who(x_diffprobe_user))

    @app.get("/api/history")
    def history(limit: int = Query(50, ge=1, le=1000)):
        return project.store.history(limit)

    @app.post("/api/retrain")
    def retrain(x_diffprobe_user: str | None = Header(None)):
        with heavy:
            return learn.retrain(project, user=who(x_diffprobe_user))

    @app.get("/api/retrain/preview")
    def preview_retrain(x_diffprobe_user: str | None = Header(None)):
        """What a retrain now would do (its effect on the validated images, the predictions it would move),
        changing nothing."""
        with heavy:
            return learn.retrain(project, user=who(x_diffprobe_user), apply=False)

    @app.post("/api/retrain/undo")
    def back_to_model(x_diffprobe_user: str | None = Header(None)):
        """Undo the retrains: the bundle's own predictions again."""
        with heavy:
            return learn.back_to_model(project, user=who(x_diffprobe_user))

    @app.get("/api/dashboard")
    def dashboard_numbers():
        return dashboard.summary(project)

    @app.get("/api/next")
    def next_to_look(n: int = Query(100, ge=1, le=MAX_PAGE),
                     measure: Literal[learn.MEASURES] = "margin"):  # type: ignore[valid-type]
        with heavy:
            found = learn.next_to_look(project, n, measure=measure)
        _, rows = project.store.page(None, ids=found["ids"], limit=n)
        return {"measure": measure, "n_candidates": found["n_candidates"], "total": len(rows), "page": 0,
                "per_page": n, "objects": [_public(r) for r in rows]}

    @app.post("/api/clusters")
    def make_clusters(request: ClusterRequest):
        with heavy:
            result = learn.cluster(project, k=request.k, max_probability=request.max_probability,
                                   method=request.method, min_cluster_size=request.min_cluster_size)
            write_json(project.root / CLUSTERS_FILE, result)
        return cluster_summary(result)

    def cluster_summary(result: dict) -> dict:
        """The clusters without their members; ``n_left``: members still ``predicted`` (0: named, all decided)."""
        undecided = set(project.store.uncertain_ids())
        return {**{k: v for k, v in result.items() if k != "clusters"},
                "clusters": [{"cluster": c["cluster"], "size": c["size"], "preview": c["ids"][:5],
                              "grown": len(c.get("grown", [])), "n_left": len(undecided.intersection(c["ids"]))}
                             for c in result["clusters"]]}

    def saved_clusters() -> dict:
        if not (project.root / CLUSTERS_FILE).is_file():
            raise HTTPException(404, "no clusters yet: POST /api/clusters (the Clusters view's Make clusters button)")
        return read_json(project.root / CLUSTERS_FILE)

    def one_cluster(result: dict, number: int) -> dict:
        found = [c for c in result["clusters"] if c["cluster"] == number]
        if not found:
            raise HTTPException(404, f"no cluster {number}; GET /api/clusters lists them")
        return found[0]

    @app.get("/api/clusters")
    def clusters():
        return cluster_summary(saved_clusters())

    @app.get("/api/clusters/{number}/objects")
    def cluster_objects(number: ClusterNumber, part: Literal["all", "grown"] = "all",
                        page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER),
                        per_page: int = Query(100, ge=1, le=MAX_PAGE)):
        found = one_cluster(saved_clusters(), number)
        ids = found["ids"] if part == "all" else found.get("grown", [])
        _, rows = project.store.page(None, ids=ids, offset=page * per_page, limit=per_page)
        return {"total": len(ids), "page": page, "per_page": per_page, "objects": [_public(r) for r in rows]}

    @app.post("/api/clusters/{number}/split")
    def split_cluster(number: ClusterNumber):
        with heavy:
            result = saved_clusters()
            one_cluster(result, number)
            made = learn.split_cluster(project, result, number)
            write_json(project.root / CLUSTERS_FILE, result)
        return {**cluster_summary(result), "made": made}

    @app.post("/api/clusters/{number}/grow")
    def grow_cluster(number: ClusterNumber, request: GrowRequest):
        with heavy:
            result = saved_clusters()
            one_cluster(result, number)
            added = learn.grow_cluster(project, result, number, request.n)
            write_json(project.root / CLUSTERS_FILE, result)
        return {**cluster_summary(result), "added": added}

    @app.post("/api/clusters/{number}/name")
    def name_cluster(number: ClusterNumber, request: NameRequest, x_diffprobe_user: str | None = Header(None)):
        """Validate every member still ``predicted`` as ``label``; members people decided on already are kept."""
        ids = one_cluster(saved_clusters(), number)["ids"]
        _, undecided = project.store.page(None, status="predicted", ids=ids, limit=len(ids))
        if not undecided:
            raise HTTPException(400, f"cluster {number} has no image left to name: every member is validated or "
                                     f"dubious already")
        done = project.store.decide([r["id"] for r in undecided], "move", user=who(x_diffprobe_user),
                                    label=request.label.strip(), new_class=request.new_class)
        return {**done, "kept": len(ids) - len(undecided)}

    def last_retrain() -> dict:
        if not (project.root / LAST_RETRAIN_FILE).is_file():
            raise HTTPException(404, "no retrain yet: validate images of at least 2 classes, then POST /api/retrain")
        return read_json(project.root / LAST_RETRAIN_FILE)

    @app.get("/api/changes")
    def changes():
        last = last_retrain()
        return {"n_changed": last["n_changed"],
                "transitions": [{k: t[k] for k in ("from", "to", "n")} for t in last["transitions"]]}

    @app.get("/api/changes/objects")
    def changed_objects(from_label: str = Query(alias="from"), to_label: str = Query(alias="to"),
                        page: int = Query(0, ge=0, le=MAX_PAGE_NUMBER), per_page: int = Query(100, ge=1, le=MAX_PAGE)):
        found = [t for t in last_retrain()["transitions"] if (t["from"], t["to"]) == (from_label, to_label)]
        if not found:
            raise HTTPException(404, f"the latest retrain moved no prediction from {from_label!r} to {to_label!r}; "
                                     f"GET /api/changes lists the moves")
        ids = found[0]["ids"]
        _, rows = project.store.page(None, ids=ids, offset=page * per_page, limit=per_page)
        return {"total": len(ids), "page": page, "per_page": per_page, "objects": [_public(r) for r in rows]}

    @app.get("/api/export.tsv")
    def export_tsv():
        return PlainTextResponse(export.ecotaxa_tsv(project), media_type="text/tab-separated-values",
                                 headers=_attachment(f"{project.name}_ecotaxa.tsv"))

    @app.get("/api/export.csv")
    def export_csv():
        return PlainTextResponse(export.labels_csv(project), media_type="text/csv",
                                 headers=_attachment(f"{project.name}_labels.csv"))

    @app.post("/api/export/bundle")
    def export_bundle(request: BundleRequest | None = None):
        """A classifier bundle fitted on the validated labels, written to the project's own ``bundle/`` folder
        (no path is taken from the request); the answer names it."""
        with heavy:
            r = export.export_bundle(project, min_per_class=(request or BundleRequest()).min_per_class)
        return {"path": r["path"], "classes": list(r["per_class"]), "per_class": r["per_class"],
                "left_out": r["left_out"], "min_per_class": r["min_per_class"], "n_images": r["n_images"],
                "temperature": round(r["temperature"], 4),
                "cross_validated_accuracy": round(r["cross_validated"]["accuracy"], 4), "time": r["time"],
                "seconds": r["seconds"]}

    return app


def _public(row: dict) -> dict:
    """An object as the browser sees it: no file path (it asks for the image by id)."""
    return {k: v for k, v in row.items() if k != "path"}


def _attachment(name: str) -> dict:
    return {"Content-Disposition": f"attachment; filename={json.dumps(name)}"}


def serve(project_dir: str | Path, *, host: str = ServeConfig.host, port: int = ServeConfig.port,
          token: str | None = None, user: str | None = None) -> None:
    """Serve the app until interrupted. A host other than the loopback needs ``token``."""
    import uvicorn  # noqa: PLC0415 - only the serving command needs it

    if not is_loopback(host) and not token:
        raise DiffprobeError(f"--host {host} opens the app to other machines; pass --token SECRET (anyone with "
                             f"the address and the token can change labels), or keep the default 127.0.0.1")
    project = Project.open(project_dir)
    hosts = None if not is_loopback(host) else ["127.0.0.1", "localhost", "[::1]", "::1"]
    app = create_app(project, token=token, user=user, allowed_hosts=hosts)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"diffprobe app: {project.store.n_objects()} objects of {project.root}; open "
          f"http://{shown}:{port}/{f'?token={token}' if token else ''}  (Ctrl-C stops)")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        project.close()

"""The web app: a JSON API over a project (FastAPI) and the plain HTML/JS/CSS of ``static/`` that uses it.
``create_app`` builds the app around the routers of ``routes`` (which lists the routes): the checks below as
middleware, the error handlers, the page and its static files.

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
import ipaddress
import threading
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..utils import DiffprobeError
from .config import ServeConfig
from .project import Project
from .routes import ROUTERS
from .routes.shared import public
from .store import StaleError

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "diffprobe_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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


async def refuse_cross_site(request: Request, call_next):
    """Middleware: a state-changing request from another site is refused with 403."""
    if request.method not in SAFE_METHODS and not same_origin(request.headers):
        source = request.headers.get("origin") or f"Sec-Fetch-Site: {request.headers.get('sec-fetch-site')}"
        return JSONResponse({"detail": f"cross-site request refused: {request.method} {request.url.path} came "
                                       f"from another site ({source}); only the app's own page may change the "
                                       f"project"}, status_code=403)
    return await call_next(request)


async def require_token(request: Request, call_next, *, token: str):
    """Middleware: a request without ``token`` (header, cookie or ``?token=``, which sets the cookie) gets 401."""
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


async def user_error(_request, e: DiffprobeError):
    return JSONResponse({"detail": str(e)}, status_code=400)


async def stale_versions(_request, e: StaleError):
    return JSONResponse({"detail": str(e), "current": [public(o) for o in e.current]}, status_code=409)


async def bad_request(_request, e: RequestValidationError):
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}"
                         for err in e.errors())
    return JSONResponse({"detail": f"bad request: {problems}"}, status_code=422)


def index():
    """The app's one page."""
    return FileResponse(STATIC / "index.html")


def create_app(project: Project, *, token: str | None = None, user: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app over an opened project. ``token``: required on every request when set. ``user``: who decides
    (default the login name; a request may name someone else with the ``X-Diffprobe-User`` header)."""
    app = FastAPI(title="diffprobe app", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project = project
    app.state.default_user = user or getpass.getuser()
    app.state.heavy = threading.Lock()  # one retrain or clustering at a time

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(BaseHTTPMiddleware, dispatch=refuse_cross_site)
    if token:
        app.add_middleware(BaseHTTPMiddleware, dispatch=partial(require_token, token=token))

    app.add_exception_handler(DiffprobeError, user_error)
    app.add_exception_handler(StaleError, stale_versions)
    app.add_exception_handler(RequestValidationError, bad_request)

    app.add_api_route("/", index, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


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

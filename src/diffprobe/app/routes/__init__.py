"""The JSON API as FastAPI routers, one module per group of routes; ``server.create_app`` includes ``ROUTERS``.

- ``project``: ``GET /api/project``, ``GET /api/classes/tree``, ``DELETE /api/classes/{name}``
- ``objects``: ``GET /api/objects``, ``/api/objects/{id}``, ``/api/objects/{id}/neighbours``,
  ``/api/objects/{id}/image``, ``GET /api/next``
- ``decisions``: ``POST /api/decisions``, ``POST /api/undo``, ``GET /api/history``
- ``retrain``: ``POST /api/retrain``, ``GET /api/retrain/preview``, ``POST /api/retrain/undo`` (back to the
  model), ``GET /api/changes``, ``GET /api/changes/objects``
- ``clusters``: ``POST /api/clusters``, ``GET /api/clusters``, ``GET /api/clusters/{number}/objects``,
  ``POST /api/clusters/{number}/split``, ``.../grow``, ``.../name``
- ``dashboard``: ``GET /api/dashboard``
- ``export``: ``GET /api/export.tsv``, ``GET /api/export.csv``, ``POST /api/export/bundle``

``shared`` holds what they share: the dependencies (``CurrentProject``, ``CurrentUser``, ``HeavyLock``), read from
the app's ``state``, the bounds of ids and pages, and small helpers.
"""

from __future__ import annotations

from . import clusters, dashboard, decisions, export, objects, project, retrain

ROUTERS = (project.router, objects.router, decisions.router, retrain.router, dashboard.router, clusters.router,
           export.router)

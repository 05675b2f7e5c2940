"""Issue 42's silent damage, through the JSON API on the tiny real project: a retrain that keeps the model's
predictions for classes it did not learn, says what it is worth and can be undone; abundances never below what a
person validated; cross-site requests refused on every state-changing route; stale decisions refused with 409;
integers past 64 bits and unusable class names refused with a 4xx that says why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from diffprobe.app.project import DB_FILE, MODEL_FILE, Project, model_predictions, uncertainty_of
from diffprobe.app.server import create_app

HUGE = 2**64 + 1


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def by_true_class(project) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for r in project.store.all_objects():
        found.setdefault(Path(r["path"]).parts[0], []).append(r["id"])
    return found


# ---- retrain ----------------------------------------------------------------------------------------------------
def test_a_retrain_keeps_the_models_predictions_for_classes_it_did_not_learn_and_can_be_undone(client, project):
    model = {o["id"]: (o["predicted_label"], o["probability"]) for o in project.store.all_objects()}
    truth = by_true_class(project)
    learned = sorted(truth)[:3]
    for c in learned:
        ok(client.post("/api/decisions", json={"ids": truth[c][:4], "action": "move", "label": c}))
    before = project.store.all_objects()
    preview = ok(client.get("/api/retrain/preview"))  # the same, changing nothing
    assert project.store.all_objects() == before and not preview["applied"]
    assert client.get("/api/changes").status_code == 404 and not ok(client.get("/api/project"))["retrains"]
    out = ok(client.post("/api/retrain"))
    assert out["applied"]
    assert {k: v for k, v in preview.items() if k not in ("applied", "seconds")} == {
        k: v for k, v in out.items() if k not in ("applied", "seconds")}
    assert out["classes"] == learned
    assert out["left_out"] == [c for c in project.store.classes() if c not in learned]
    after = project.store.all_objects()
    kept = [o for o in after if model[o["id"]][0] not in learned]
    assert kept and out["n_kept"] == len(kept)
    # What the model puts in a class the head never saw stays there, with the model's probability.
    assert all((o["predicted_label"], o["probability"]) == pytest.approx(model[o["id"]]) for o in kept)
    assert all(o["label"] == model[o["id"]][0] for o in kept if o["status"] == "predicted")
    # Its effect, on the validated images, each predicted by a head that was not fitted on it.
    validated = [o for o in after if o["status"] == "validated"]
    assert out["effect"] == {"n": 12, "model_right": sum(model[o["id"]][0] == o["label"] for o in validated),
                             "retrain_right": sum(o["predicted_label"] == o["label"] for o in validated),
                             "worse": out["effect"]["retrain_right"] < out["effect"]["model_right"]}

    back = ok(client.post("/api/retrain/undo"))
    assert back["n_changed"] == sum(o["status"] == "predicted" and o["label"] != model[o["id"]][0] for o in after)
    for o in project.store.all_objects():
        assert (o["predicted_label"], o["probability"]) == pytest.approx(model[o["id"]])
        assert o["label"] == (model[o["id"]][0] if o["status"] == "predicted" else o["label"])
    stored, own = uncertainty_of(project.root), model_predictions(project)
    assert np.array_equal(stored["margin"], own["margin"]) and np.array_equal(stored["entropy"], own["entropy"])
    assert [r["kind"] for r in ok(client.get("/api/project"))["retrains"]] == ["retrain", "model"]


def test_a_project_made_before_the_models_predictions_were_kept_gets_them_back(client, project):
    model = {o["id"]: (o["predicted_label"], o["probability"]) for o in project.store.all_objects()}
    truth = by_true_class(project)
    for c in sorted(truth)[:2]:
        ok(client.post("/api/decisions", json={"ids": truth[c][:3], "action": "move", "label": c}))
    (project.root / MODEL_FILE).unlink()  # as an older diffprobe left it
    ok(client.post("/api/retrain"))  # recomputed from the bundle's head, the retrain overwrote the store's
    own = model_predictions(project)
    assert [model[i][0] for i in range(len(model))] == own["label"].tolist()
    assert own["probability"] == pytest.approx([model[i][1] for i in range(len(model))], abs=1e-5)


# ---- abundance --------------------------------------------------------------------------------------------------
def test_abundance_estimates_never_fall_below_the_validated_count(client, project):
    for c, ids in by_true_class(project).items():  # 6 of each class validated as what they are
        ok(client.post("/api/decisions", json={"ids": ids[:6], "action": "move", "label": c}))
    rows = ok(client.get("/api/dashboard"))["classes"]
    assert all(r["validated_as_this"] == 6 for r in rows)
    assert all(r["abundance_high"] >= r["abundance"] >= r["abundance_low"] >= 6 for r in rows), rows


# ---- cross-site requests ----------------------------------------------------------------------------------------
def every_route(app) -> list:
    """The app's routes, its included routers' too (FastAPI >= 0.137 keeps an included router as one entry of
    ``app.routes``; older versions copy its routes there)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return app.routes
    return list(iter_route_contexts(app.routes))


def changing_routes(app) -> list[tuple[str, str]]:
    return sorted((m, r.path.replace("{number}", "0").replace("{object_id}", "0"))
                  for r in every_route(app) for m in getattr(r, "methods", None) or ()
                  if m not in ("GET", "HEAD", "OPTIONS"))


@pytest.mark.parametrize("headers", [{"Origin": "http://127.0.0.1:9999"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver:9999"},
                                     {"Sec-Fetch-Site": "cross-site"}])
def test_every_state_changing_route_refuses_cross_site_requests(project, headers):
    app = create_app(project, user="tester")
    routes = changing_routes(app)
    assert ("POST", "/api/undo") in routes and ("POST", "/api/retrain/undo") in routes and len(routes) >= 9
    project.store.decide([0, 1], "validate", user="tester")
    with TestClient(app) as c:
        for method, path in routes:
            r = c.request(method, path, headers=headers)
            assert r.status_code == 403 and "cross-site request refused" in r.json()["detail"], (method, path, r.text)
    assert len(project.store.history()) == 2 and project.store.get(0)["status"] == "validated"  # nothing undone


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://testserver"}, {"Sec-Fetch-Site": "same-origin"},
                                     {"Sec-Fetch-Site": "none"}])
def test_the_apps_own_pages_and_scripts_may_change_the_project(client, headers):
    r = client.post("/api/decisions", json={"ids": [0], "action": "validate"}, headers=headers)
    assert r.status_code == 200, r.text
    assert client.post("/api/undo", headers=headers).status_code == 200


# ---- optimistic concurrency ---------------------------------------------------------------------------------------
def test_two_clients_a_stale_decision_gets_409_and_the_object_as_it_is_now(project):
    app = create_app(project, user="tester")
    with TestClient(app) as first, TestClient(app) as second:
        seen = ok(first.get("/api/objects/3"))
        assert seen["version"] == 0
        ok(second.post("/api/decisions", json={"ids": [3], "action": "validate", "versions": [0]},
                       headers={"X-Diffprobe-User": "bo"}))
        other = next(c for c in project.store.classes() if c != seen["label"])
        r = first.post("/api/decisions", json={"ids": [3, 4], "action": "move", "label": other, "versions": [0, 0]})
        assert r.status_code == 409 and "changed since" in r.json()["detail"], r.text
        assert [(o["id"], o["status"], o["version"]) for o in r.json()["current"]] == [(3, "validated", 1)]
        now = project.store.get(3)
        assert (now["label"], now["status"]) == (seen["label"], "validated")  # what bo decided stands
        assert project.store.get(4)["status"] == "predicted"  # the batch is refused whole
        ok(first.post("/api/decisions", json={"ids": [3], "action": "move", "label": other, "versions": [1]}))
        r = first.post("/api/decisions", json={"ids": [3], "action": "validate", "versions": [0, 1]})
        assert r.status_code == 400 and "one version per id" in r.json()["detail"]


def test_a_retrain_that_moves_a_prediction_makes_a_new_version(client, project):
    truth = by_true_class(project)
    for c in sorted(truth)[:3]:
        ok(client.post("/api/decisions", json={"ids": truth[c][:4], "action": "move", "label": c}))
    before = {o["id"]: o for o in project.store.all_objects()}
    ok(client.post("/api/retrain"))
    for o in project.store.all_objects():
        moved = o["status"] == "predicted" and o["label"] != before[o["id"]]["label"]
        assert o["version"] == before[o["id"]]["version"] + moved


def test_a_store_made_before_versions_is_brought_up_to_date(project_dir):
    with sqlite3.connect(project_dir / DB_FILE) as db:
        db.execute("ALTER TABLE objects DROP COLUMN version")
        db.execute("ALTER TABLE retrains DROP COLUMN kind")
    p = Project.open(project_dir)
    try:
        assert p.store.get(0)["version"] == 0
        p.store.decide([0], "validate", user="ann", versions=[0])
        assert p.store.get(0)["version"] == 1
    finally:
        p.close()


# ---- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "url", "body"), [
    ("get", f"/api/objects/{HUGE}", None),
    ("get", f"/api/objects/{HUGE}/image", None),
    ("get", f"/api/objects?page={HUGE}", None),
    ("get", f"/api/objects?page={2**62}", None),
    ("get", f"/api/clusters/{HUGE}/objects", None),
    ("get", f"/api/changes/objects?from=a&to=b&page={HUGE}", None),
    ("post", "/api/decisions", {"ids": [HUGE], "action": "validate"}),
    ("post", "/api/decisions", {"ids": [2**63], "action": "validate"}),
    ("post", "/api/decisions", {"ids": [0], "action": "validate", "versions": [HUGE]}),
    ("post", f"/api/clusters/{HUGE}/split", None),
])
def test_integers_past_64_bits_get_a_4xx(client, method, url, body):
    r = client.request(method.upper(), url, json=body)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
    assert r.json()["detail"]


@pytest.mark.parametrize(("label", "message"), [("a\tb", "control characters"), ("two\nlines", "control characters"),
                                                ("x" * 100_000, "at most 200 characters"), ("  ", "class name")])
def test_a_class_name_must_be_usable(client, project, label, message):
    r = client.post("/api/decisions", json={"ids": [0], "action": "move", "label": label, "new_class": True})
    assert r.status_code == 400 and message in r.json()["detail"], r.text
    assert len(r.text) < 1000  # the message does not repeat a huge name
    assert project.store.classes() == project.info["classes"] and project.store.get(0)["status"] == "predicted"


def test_an_empty_class_people_added_can_be_removed_and_comes_back_with_an_undo(client, project):
    project.store.add_classes(["two\tlines"], "user")  # as an older version accepted it
    r = client.delete("/api/classes/two%09lines")
    assert r.status_code == 200 and "two\tlines" not in [c["name"] for c in r.json()["classes"]], r.text
    model_class = project.store.classes()[0]
    r = client.delete(f"/api/classes/{model_class}")
    assert r.status_code == 400 and "model's classes" in r.json()["detail"]
    ok(client.post("/api/decisions", json={"ids": [0], "action": "move", "label": "blob", "new_class": True}))
    r = client.delete("/api/classes/blob")
    assert r.status_code == 400 and "still holds or is predicted for 1 images" in r.json()["detail"]
    ok(client.post("/api/decisions", json={"ids": [0], "action": "move", "label": model_class}))
    ok(client.delete("/api/classes/blob"))
    assert "blob" not in project.store.classes()
    ok(client.post("/api/undo"))  # object 0 back in blob: the class comes back with it
    assert project.store.get(0)["label"] == "blob" and project.store.classes()[-1] == "blob"
    assert ok(client.get("/api/dashboard"))["n_validated"] == 1
    assert client.delete("/api/classes/nope").status_code == 400

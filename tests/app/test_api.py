"""The app's JSON API (FastAPI's TestClient) on a tiny real project: decisions, undo, retrain, clusters, export,
and the safety rules (only the project's images, clear 4xx errors, a token off the loopback)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffprobe.app.project import Project
from diffprobe.app.server import create_app, serve
from diffprobe.data.manifest import read_ecotaxa_tsv
from diffprobe.utils import DiffprobeError


def page(client, label, **params):
    r = client.get("/api/objects", params={"label": label, **params})
    assert r.status_code == 200, r.text
    return r.json()


def first_class(client) -> dict:
    return next(c for c in client.get("/api/project").json()["classes"] if c["total"] >= 3)


def true_class(project, object_id: int) -> str:
    return Path(project.store.get(object_id)["path"]).parts[0]


def test_the_project_holds_every_image_its_features_and_predictions(project):
    n = project.store.n_objects()
    assert n == 80 == project.info["n_objects"]
    assert project.features().shape == (80, project.info["feature_dim"])
    rows = project.store.all_objects()
    assert {r["status"] for r in rows} == {"predicted"}
    assert all(r["label"] == r["predicted_label"] in project.info["classes"] and 0 < r["probability"] <= 1
               for r in rows)
    with Image.open(project.image_file(rows[5]["path"])) as im:
        assert im.size == (rows[5]["width"], rows[5]["height"])  # shown at their true relative size
    assert len({r["object_id"] for r in rows}) == 80


def test_the_grid_pages_by_class_most_or_least_confident_first(client):
    c = first_class(client)
    top = page(client, c["name"], per_page=2)
    assert top["total"] == c["total"] and len(top["objects"]) == 2
    probs = [o["probability"] for o in page(client, c["name"])["objects"]]
    assert probs == sorted(probs, reverse=True)
    assert [o["probability"] for o in page(client, c["name"], sort="uncertainty")["objects"]] == sorted(probs)
    assert "path" not in top["objects"][0]  # the browser asks for images by id, never by path


def test_validate_dubious_move_and_undo_keep_an_append_only_history(client, project):
    c = first_class(client)
    a, b, d = (o["id"] for o in page(client, c["name"])["objects"][:3])
    other = next(x for x in project.store.classes() if x != c["name"])
    assert client.post("/api/decisions", json={"ids": [a, b], "action": "validate"}).json()["changed"] == 2
    assert client.post("/api/decisions", json={"ids": [d], "action": "dubious"}).json()["changed"] == 1
    r = client.post("/api/decisions", json={"ids": [b], "action": "move", "label": other})
    assert r.json()["changed"] == 1
    assert (project.store.get(b)["label"], project.store.get(b)["status"]) == (other, "validated")
    # Validating what is validated already changes nothing and records nothing.
    assert client.post("/api/decisions", json={"ids": [a], "action": "validate"}).json() == {"batch": None,
                                                                                            "changed": 0}
    assert client.post("/api/undo").json()["changed"] == 1  # the move
    assert project.store.get(b)["label"] == c["name"] and project.store.get(b)["status"] == "validated"
    assert client.post("/api/undo").json()["action"] == "dubious"
    assert project.store.get(d)["status"] == "predicted"
    history = client.get("/api/history").json()
    assert len(history) == 6  # 2 validated + 1 dubious + 1 move + 2 undone: nothing rewritten
    assert history[0]["action"] == "undo" and history[0]["user"] == "tester"
    assert {h["object"] for h in history} == {a, b, d}
    counts = {x["name"]: x for x in client.get("/api/project").json()["classes"]}
    assert counts[c["name"]]["validated"] == 2


def test_undo_is_per_user_and_says_when_nothing_is_left(client):
    c = first_class(client)
    oid = page(client, c["name"])["objects"][0]["id"]
    client.post("/api/decisions", json={"ids": [oid], "action": "validate"}, headers={"X-Diffprobe-User": "ann"})
    r = client.post("/api/undo")
    assert r.status_code == 400 and "nothing to undo" in r.json()["detail"]
    assert client.post("/api/undo", headers={"X-Diffprobe-User": "ann"}).json()["changed"] == 1


def test_moving_to_a_new_class_must_be_asked_for(client, project):
    oid = page(client, first_class(client)["name"])["objects"][0]["id"]
    r = client.post("/api/decisions", json={"ids": [oid], "action": "move", "label": "Noctiluca"})
    assert r.status_code == 400 and "unknown class 'Noctiluca'" in r.json()["detail"]
    r = client.post("/api/decisions", json={"ids": [oid], "action": "move", "label": "Noctiluca", "new_class": True})
    assert r.status_code == 200
    assert "Noctiluca" in project.store.classes()
    r = client.post("/api/decisions", json={"ids": [99999], "action": "move", "label": "Ghost", "new_class": True})
    assert r.status_code == 400 and "Ghost" not in project.store.classes()  # a refused move creates no class
    assert page(client, "Noctiluca")["objects"][0]["id"] == oid


@pytest.mark.parametrize(("method", "url", "body", "status", "message"), [
    ("post", "/api/decisions", {"ids": [0], "action": "eat"}, 422, "action"),
    ("post", "/api/decisions", {"ids": [], "action": "validate"}, 422, "ids"),
    ("post", "/api/decisions", {"ids": ["x"], "action": "validate"}, 422, "ids"),
    ("post", "/api/decisions", {"ids": [99999], "action": "validate"}, 400, "no object with id 99999"),
    ("post", "/api/decisions", {"ids": [0], "action": "move"}, 400, "needs a class name"),
    ("post", "/api/decisions", {"ids": [0], "action": "validate", "label": "x"}, 400, "only for the move"),
    ("get", "/api/objects?label=nope", None, 404, "no class 'nope'"),
    ("get", "/api/objects?per_page=100000", None, 422, "per_page"),
    ("get", "/api/objects?sort=random", None, 422, "sort"),
    ("get", "/api/objects/99999/image", None, 404, "no object 99999"),
    ("get", "/api/clusters", None, 404, "no clusters yet"),
    ("post", "/api/clusters", {"k": 1}, 422, "k"),
])
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(client, method, url, body, status, message):
    r = client.request(method.upper(), url, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


@pytest.mark.parametrize("url", ["/static/../project.json", "/static/..%2Fproject.json", "/static/%2e%2e/store.py",
                                 "/api/objects/..%2F..%2Fetc%2Fpasswd/image", "/api/objects/-1/image",
                                 "/static/../../../../etc/passwd", "/decisions.sqlite", "/features.npy"])
def test_only_the_projects_own_images_can_be_read(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422), (url, r.status_code)
    assert b"root:" not in r.content and b"SQLite" not in r.content and b"format" not in r.content


def test_an_image_is_served_by_id_as_png(client):
    r = client.get("/api/objects/0/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
    assert client.get("/").text.startswith("<!doctype html>")
    assert client.get("/static/app.js").status_code == 200


def test_decisions_survive_reopening_the_database(project_dir):
    p = Project.open(project_dir)
    p.store.decide([1, 2], "validate", user="ann")
    p.store.decide([3], "move", label=p.store.classes()[0], user="ann")
    p.store.engine.dispose()  # as a killed process would: no clean shutdown beyond what each commit wrote
    again = Project.open(project_dir)
    try:
        assert [again.store.get(i)["status"] for i in (1, 2, 3)] == ["validated"] * 3
        assert again.store.get(3)["label"] == again.store.classes()[0]
        assert len(again.store.history()) == 3
    finally:
        again.close()


def test_retrain_learns_from_validated_labels_and_reports_what_changed(client, project):
    # Validate 4 images of each of 3 classes under their true class (the class folder).
    by_class: dict[str, list[int]] = {}
    for r in project.store.all_objects():
        by_class.setdefault(Path(r["path"]).parts[0], []).append(r["id"])
    classes = sorted(by_class)[:3]
    for c in classes:
        assert client.post("/api/decisions", json={"ids": by_class[c][:4], "action": "move", "label": c}).status_code == 200
    lonely = sorted(by_class)[3]
    client.post("/api/decisions", json={"ids": by_class[lonely][:1], "action": "move", "label": lonely})
    before = {r["id"]: r["label"] for r in project.store.all_objects()}
    r = client.post("/api/retrain")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["n_validated"] == 12 and out["classes"] == classes
    assert out["left_out"] == [c for c in project.store.classes() if c not in classes]  # with 1 or 0 validated
    assert out["readout"] == "features"  # the project's bundle has a linear head: no hidden layer to read
    after = project.store.all_objects()
    predicted = [o for o in after if o["status"] == "predicted"]
    assert out["n_changed"] == sum(before[o["id"]] != o["label"] for o in predicted)
    assert all(o["label"] == true_class(project, o["id"]) for o in after if o["status"] == "validated")
    assert client.get("/api/project").json()["retrains"][0]["n_validated"] == 12


def test_retrain_needs_two_classes_with_two_validated_images(client):
    r = client.post("/api/retrain")
    assert r.status_code == 400 and "at least 2 classes" in r.json()["detail"]


def test_clusters_group_uncertain_images_nearest_the_centre_first_and_can_be_named(client, project):
    r = client.post("/api/clusters", json={"k": 3, "max_probability": 1.0})
    assert r.status_code == 200, r.text
    clusters = r.json()["clusters"]
    assert sum(c["size"] for c in clusters) == 80 and len(clusters) == 3
    assert all(c["n_left"] == c["size"] for c in clusters)
    assert client.get("/api/clusters").json()["clusters"] == clusters  # kept in the project
    first = client.get(f"/api/clusters/{clusters[0]['cluster']}/objects").json()
    ids = [o["id"] for o in first["objects"]]
    assert ids[:5] == clusters[0]["preview"] and first["total"] == clusters[0]["size"]
    named = client.post("/api/decisions", json={"ids": ids, "action": "move", "label": "blob", "new_class": True})
    assert named.json()["changed"] == len(ids)
    assert page(client, "blob", status="validated")["total"] == len(ids)
    assert [c["n_left"] for c in client.get("/api/clusters").json()["clusters"]] == [0] + [
        c["size"] for c in clusters[1:]]  # the named one is told apart
    assert client.get("/api/clusters/99/objects").status_code == 404


def test_export_writes_ecotaxa_tsv_that_reads_back_and_csv(client, project, tmp_path):
    client.post("/api/decisions", json={"ids": [0, 1], "action": "validate"}, headers={"X-Diffprobe-User": "ann"})
    client.post("/api/decisions", json={"ids": [2], "action": "dubious"})
    r = client.get("/api/export.tsv")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    tsv = tmp_path / "export.tsv"
    tsv.write_text(r.text)
    rows = list(csv.DictReader(io.StringIO(r.text), delimiter="\t"))
    assert rows[0]["object_id"] == "[t]" and len(rows) == 81
    by_id = {row["img_file_name"]: row for row in rows[1:]}
    zero = by_id[project.store.get(0)["path"]]
    assert zero["object_annotation_status"] == "validated" and zero["object_annotation_person_name"] == "ann"
    assert len(zero["object_annotation_date"]) == 8
    # read as a labelled EcoTaxa dataset: the validated objects, with their labels, paths beside the images
    m = read_ecotaxa_tsv(tsv)
    assert sorted(m.paths) == sorted(project.store.get(i)["path"] for i in (0, 1))
    assert m.labels[m.paths.index(project.store.get(0)["path"])] == project.store.get(0)["label"]
    lines = list(csv.DictReader(io.StringIO(client.get("/api/export.csv").text)))
    assert len(lines) == 80 and Path(lines[0]["path"]).is_file()
    assert {row["status"] for row in lines} == {"predicted", "validated", "dubious"}


def test_the_bundle_button_writes_a_bundle_into_the_project_folder(client, project, project_dir):
    r = client.post("/api/export/bundle")
    assert r.status_code == 400 and "at least 2 classes with 5 or more validated images" in r.json()["detail"]
    assert client.post("/api/export/bundle", json={"min_per_class": 1}).status_code == 422
    by_class: dict[str, list[int]] = {}
    for o in project.store.all_objects():
        by_class.setdefault(Path(o["path"]).parts[0], []).append(o["id"])
    for c in sorted(by_class)[:2]:
        client.post("/api/decisions", json={"ids": by_class[c][:5], "action": "move", "label": c})
    client.post("/api/decisions", json={"ids": by_class[sorted(by_class)[2]][:4], "action": "move", "label": "blob",
                                        "new_class": True})
    r = client.post("/api/export/bundle", json={"min_per_class": 4})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["path"] == str(project_dir.resolve() / "bundle") and (Path(out["path"]) / "bundle.json").is_file()
    assert out["classes"] == sorted(by_class)[:2] + ["blob"] and out["n_images"] == 14 and out["left_out"] == {}
    assert 0 <= out["cross_validated_accuracy"] <= 1


def test_a_token_guards_every_request(project):
    from fastapi.testclient import TestClient

    with TestClient(create_app(project, token="s3cret")) as c:
        r = c.get("/api/project")
        assert r.status_code == 401 and "token" in r.json()["detail"]
        assert c.get("/api/project", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/project", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/?token=s3cret").status_code == 200  # sets the cookie the page's requests then carry
        assert c.get("/api/project").status_code == 200


def test_other_hosts_are_refused_on_the_loopback(project):
    from fastapi.testclient import TestClient

    with TestClient(create_app(project, allowed_hosts=["127.0.0.1", "localhost"]), base_url="http://evil.example") as c:
        assert c.get("/api/project").status_code == 400


def test_serving_beyond_the_loopback_needs_a_token(project_dir):
    with pytest.raises(DiffprobeError, match="--token"):
        serve(project_dir, host="0.0.0.0")


def test_init_resumes_from_finished_chunks_and_refuses_a_used_folder(app_bundle, tmp_path, monkeypatch):
    from diffprobe.app import project as project_module
    from diffprobe.probe.bundle import ClassifierBundle

    out = tmp_path / "p"

    def crash(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(project_module.Store, "add_objects", crash)
    with pytest.raises(KeyboardInterrupt):
        project_module.init_project(out, app_bundle["data"], app_bundle["bundle"], chunk=32, progress=False)
    assert len(list((out / ".partial").glob("chunk-*.npz"))) == 3
    with pytest.raises(DiffprobeError, match="interrupted"):
        Project.open(out)
    monkeypatch.undo()
    monkeypatch.setattr(ClassifierBundle, "features", crash)  # every chunk is done: no image is read again
    project_module.init_project(out, app_bundle["data"], app_bundle["bundle"], chunk=32, progress=False)
    p = Project.open(out)
    assert p.store.n_objects() == 80 and not (out / ".partial").exists()
    p.close()
    with pytest.raises(DiffprobeError, match="already an app project"):
        project_module.init_project(out, app_bundle["data"], app_bundle["bundle"], progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(DiffprobeError, match="not empty"):
        project_module.init_project(tmp_path / "full", app_bundle["data"], app_bundle["bundle"], progress=False)


def test_unreadable_images_are_listed_not_fatal(app_bundle, tmp_path):
    from diffprobe.app.project import init_project

    images = tmp_path / "images"
    images.mkdir()
    for f in sorted((app_bundle["data"] / "chain_five").iterdir())[:4]:
        (images / f.name).write_bytes(f.read_bytes())
    (images / "broken.png").write_bytes(b"not a png")
    r = init_project(tmp_path / "p", images, app_bundle["bundle"], progress=False)
    assert r["n_objects"] == 4 and r["n_skipped"] == 1
    assert "broken.png" in (tmp_path / "p" / "skipped.csv").read_text()
    assert np.load(tmp_path / "p" / "features.npy").shape[0] == 4


def test_the_cli_makes_and_exports_a_project(app_bundle, tmp_path, capsys):
    from diffprobe.cli import main

    out = tmp_path / "p"
    assert main(["app", "init", str(out), "--images", str(app_bundle["data"] / "spiny_long"), "--model",
                 str(app_bundle["bundle"]), "--precision", "fp32"]) == 0
    assert "10 objects" in capsys.readouterr().out
    assert main(["app", "export", str(out), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "p_ecotaxa.tsv").is_file() and (tmp_path / "e" / "p_labels.csv").is_file()
    with pytest.raises(SystemExit, match="--project"):
        main(["app"])


@pytest.mark.parametrize("bulk_rows", [1, 10**9])  # indexes rebuilt once / kept and updated row by row
def test_new_predictions_are_stored_alike_whether_or_not_the_indexes_are_rebuilt(tmp_path, monkeypatch, bulk_rows):
    from sqlalchemy import inspect

    from diffprobe.app import store as store_module
    monkeypatch.setattr(store_module, "BULK_UPDATE_ROWS", bulk_rows)
    store = store_module.Store(f"sqlite:///{tmp_path / 'p.db'}")
    store.add_classes(["a", "b"], "model")
    store.add_objects([{"id": i, "object_id": f"o{i}", "path": f"{i}.png", "sample": "s", "width": 9, "height": 9,
                        "predicted_label": "a", "probability": 0.5} for i in range(6)])
    changed = store.set_predictions(list(range(6)), ["a", "b", "b", "a", "b", "a"], [0.9, 0.8, 0.7, 0.6, 0.95, 0.1],
                                    user="u", classes=["a", "b"], n_validated=0)
    assert changed == [(1, "a", "b"), (2, "a", "b"), (4, "a", "b")]
    total, rows = store.page("b")
    assert total == 3 and [r["id"] for r in rows] == [4, 1, 2]  # most confident first
    indexes = {ix["name"] for ix in inspect(store.engine).get_indexes("objects")}
    assert {"ix_objects_label_probability", "ix_objects_status_probability"} <= indexes
    store.close()

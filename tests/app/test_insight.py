"""The dashboard, active learning, cluster split / grow / name, and what a retrain changed, through the JSON API
on the tiny real project (and the array functions behind them on made-up points)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from diffprobe.app import learn
from diffprobe.app.dashboard import acc_counts, wilson_interval


def decide(client, ids, action, **extra):
    r = client.post("/api/decisions", json={"ids": ids, "action": action, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def true_class(project, object_id: int) -> str:
    return Path(project.store.get(object_id)["path"]).parts[0]


# ---- dashboard ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (3, 7), (1, 1), (40, 97)])
def test_wilson_interval_matches_scipy(k, n):
    expected = binomtest(k, n).proportion_ci(method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_dashboard_counts_precision_abundance_and_confusion(client, project):
    empty = ok(client.get("/api/dashboard"))
    assert empty["n_objects"] == 80 and empty["n_validated"] == 0 and empty["accuracy"] is None
    assert all(r["precision"] is None and r["abundance"] is None for r in empty["classes"])
    assert empty["confusion"] == {"classes": [], "counts": []}
    rows = {r["class"]: r for r in empty["classes"]}
    objects = project.store.all_objects()
    for name, row in rows.items():
        assert row["predicted"] == sum(o["predicted_label"] == name for o in objects)

    c = max(rows, key=lambda name: rows[name]["predicted"])
    other = next(name for name in rows if name != c)
    members = [o["id"] for o in objects if o["predicted_label"] == c]
    decide(client, members[:2], "validate")
    decide(client, members[2:3], "move", label=other)
    decide(client, members[3:4], "dubious")  # neither right nor wrong: not counted
    out = ok(client.get("/api/dashboard"))
    row = {r["class"]: r for r in out["classes"]}[c]
    assert (row["validated"], row["validated_as_predicted"], row["precision"]) == (3, 2, round(2 / 3, 4))
    assert (row["precision_low"], row["precision_high"]) == pytest.approx(wilson_interval(2, 3), abs=1e-4)
    assert out["n_validated"] == 3 and out["n_dubious"] == 1 and out["share_validated"] == round(3 / 80, 4)
    assert out["confusion"]["classes"] == [x for x in project.store.classes() if x in (c, other)]
    cells = dict(zip(out["confusion"]["classes"], out["confusion"]["counts"], strict=True))
    col = out["confusion"]["classes"].index(c)
    assert cells[c][col] == 2 and cells[other][col] == 1  # rows: validated label, columns: predicted label
    # Abundances: the library's adjusted classify and count, with a bootstrap interval around it, never below the
    # images validated as the class.
    predicted = np.asarray([r["predicted"] for r in out["classes"]])
    confusion = np.zeros((len(predicted), len(predicted)), np.int64)
    index = {r["class"]: k for k, r in enumerate(out["classes"])}
    confusion[index[c], index[c]], confusion[index[other], index[c]] = 2, 1
    expected = np.maximum(acc_counts(predicted, confusion), confusion.sum(1))
    got = np.asarray([r["abundance"] for r in out["classes"]])
    assert got == pytest.approx(expected, abs=0.06) and got.sum() >= 80 - 0.5
    assert all(r["abundance_low"] <= r["abundance"] + 0.05 and r["abundance"] <= r["abundance_high"] + 0.05
               for r in out["classes"])


# ---- active learning ------------------------------------------------------------------------------------------
def test_next_to_look_is_unvalidated_most_uncertain_first(client, project):
    decide(client, [0, 1, 2], "validate")
    out = ok(client.get("/api/next", params={"n": 10, "measure": "probability"}))
    ids = [o["id"] for o in out["objects"]]
    assert len(ids) == len(set(ids)) == 10 and not {0, 1, 2} & set(ids) and out["n_candidates"] == 77
    assert all(o["status"] == "predicted" for o in out["objects"])
    probs = [o["probability"] for o in out["objects"]]
    assert probs == sorted(probs)
    # The most uncertain candidate of all is always in the page (it heads its own k-means group).
    assert min(p for _, p in project.store.predicted_objects()) == probs[0]
    for measure in ("margin", "entropy"):
        assert len(ok(client.get("/api/next", params={"n": 5, "measure": measure}))["objects"]) == 5
    r = client.get("/api/next", params={"measure": "luck"})
    assert r.status_code == 422 and "measure" in r.json()["detail"]


def test_diverse_uncertain_does_not_fill_a_page_with_near_duplicates():
    rng = np.random.default_rng(0)
    duplicates = rng.normal(0, 0.01, (10, 2))              # ten near-identical, the most uncertain
    spread = rng.normal(0, 1, (30, 2)) + [5, 0]
    x = np.vstack([duplicates, spread, [[20, 20], [-20, 20]]])
    uncertain = np.r_[np.full(10, 0.99) - np.arange(10) * 1e-3, np.linspace(0.5, 0.9, 30), 0.95, 0.94]
    picked = learn.diverse_uncertain(uncertain, x, 3, pool=5)
    assert picked[0] == 0 and np.isin([40, 41], picked).all()  # one duplicate, then the distinct uncertain ones
    assert list(np.argsort(-uncertain)[:3]) == [0, 1, 2]       # what uncertainty alone would have shown
    assert len(learn.diverse_uncertain(uncertain, x, 100)) == len(x)


# ---- clusters -------------------------------------------------------------------------------------------------
def clusters_now(client) -> dict[int, dict]:
    return {c["cluster"]: c for c in ok(client.get("/api/clusters"))["clusters"]}


def members(client, number, part="all") -> list[int]:
    return [o["id"] for o in ok(client.get(f"/api/clusters/{number}/objects",
                                           params={"part": part, "per_page": 500}))["objects"]]


def test_split_a_cluster_in_two(client):
    made = ok(client.post("/api/clusters", json={"k": 3, "max_probability": 1.0}))
    big = made["clusters"][0]
    before = set(members(client, big["cluster"]))
    out = ok(client.post(f"/api/clusters/{big['cluster']}/split"))
    assert len(out["made"]) == 2 and big["cluster"] not in clusters_now(client)
    halves = [set(members(client, n)) for n in out["made"]]
    assert halves[0] | halves[1] == before and not halves[0] & halves[1] and all(halves)
    assert sum(c["size"] for c in clusters_now(client).values()) == 80
    assert client.post("/api/clusters/99/split").status_code == 404


def test_grow_a_cluster_with_its_nearest_unvalidated_neighbours(client, project):
    made = ok(client.post("/api/clusters", json={"k": 4, "max_probability": 0.9999}))
    number = made["clusters"][-1]["cluster"]
    before = members(client, number)
    decide(client, [i for i in range(80) if i not in before][:3], "validate")  # validated: never grown into
    out = ok(client.post(f"/api/clusters/{number}/grow", json={"n": 5}))
    added = out["added"]
    assert len(added) == 5 and not set(added) & set(before)
    assert members(client, number) == before + added and members(client, number, "grown") == added
    x = learn.embedding(project)
    candidates = np.asarray([i for i in project.store.uncertain_ids() if i not in before])
    distance = np.linalg.norm(x[candidates] - x[before].mean(0), axis=1)
    assert added == candidates[np.argsort(distance)[:5]].tolist()  # the nearest to the centre, nearest first
    for n, c in clusters_now(client).items():  # each object in one cluster only
        assert n == number or not set(members(client, n)) & set(added)
    r = client.post(f"/api/clusters/{number}/grow", json={"n": 0})
    assert r.status_code == 422 and "n" in r.json()["detail"]


def test_name_a_whole_cluster_keeps_what_people_decided(client, project):
    made = ok(client.post("/api/clusters", json={"k": 2, "max_probability": 1.0}))
    number = made["clusters"][0]["cluster"]
    ids = members(client, number)
    decide(client, ids[:1], "dubious")
    out = ok(client.post(f"/api/clusters/{number}/name", json={"label": "blob", "new_class": True}))
    assert out["changed"] == len(ids) - 1 and out["kept"] == 1
    assert project.store.get(ids[0])["status"] == "dubious"
    assert all(project.store.get(i)["label"] == "blob" and project.store.get(i)["status"] == "validated"
               for i in ids[1:])
    r = client.post(f"/api/clusters/{number}/name", json={"label": "blob"})
    assert r.status_code == 400 and "no image left" in r.json()["detail"]
    other = made["clusters"][1]["cluster"]
    r = client.post(f"/api/clusters/{other}/name", json={"label": "Nope"})
    assert r.status_code == 400 and "unknown class 'Nope'" in r.json()["detail"]
    assert client.post(f"/api/clusters/{other}/name", json={"label": ""}).status_code == 422


def test_hdbscan_clusters_leave_the_noise_out(client):
    out = ok(client.post("/api/clusters", json={"method": "hdbscan", "min_cluster_size": 3, "max_probability": 1.0}))
    assert out["method"] == "hdbscan" and out["n_objects"] == 80
    assert out["n_noise"] + sum(c["size"] for c in out["clusters"]) == 80
    assert client.post("/api/clusters", json={"method": "dbscan"}).status_code == 422


# ---- what changed ---------------------------------------------------------------------------------------------
def test_a_retrain_says_which_predictions_moved_where(client, project):
    r = client.get("/api/changes")
    assert r.status_code == 404 and "no retrain yet" in r.json()["detail"]
    by_class: dict[str, list[int]] = {}
    for o in project.store.all_objects():
        by_class.setdefault(true_class(project, o["id"]), []).append(o["id"])
    for c in sorted(by_class)[:3]:
        decide(client, by_class[c][:4], "move", label=c)
    before = {o["id"]: o["label"] for o in project.store.all_objects()}
    margin_before = np.load(project.root / "uncertainty.npz")["margin"]
    out = ok(client.post("/api/retrain"))
    every = ok(client.get("/api/changes"))["transitions"]  # the response names the 10 most frequent
    assert out["n_changed"] > 0 and sum(t["n"] for t in every) == out["n_changed"]
    assert out["transitions"] == every[:10] == sorted(every, key=lambda t: -t["n"])[:10]
    for t in every:
        moved = ok(client.get("/api/changes/objects", params={"from": t["from"], "to": t["to"]}))
        assert moved["total"] == t["n"]
        assert all(before[o["id"]] == t["from"] and o["label"] == t["to"] for o in moved["objects"])
    assert not np.array_equal(np.load(project.root / "uncertainty.npz")["margin"], margin_before)
    r = client.get("/api/changes/objects", params={"from": "x", "to": "y"})
    assert r.status_code == 404 and "no prediction from 'x'" in r.json()["detail"]


def test_the_neighbours_of_an_image_are_the_nearest_in_the_embedding(client, project):
    out = ok(client.get("/api/objects/5/neighbours", params={"n": 7}))
    ids = [o["id"] for o in out["objects"]]
    x = learn.embedding(project)
    distance = np.linalg.norm(x - x[5], axis=1)
    assert len(ids) == 7 and 5 not in ids and len(set(ids)) == 7
    assert list(distance[ids]) == sorted(distance[ids])
    assert distance[ids].max() <= np.sort(np.delete(distance, 5))[6] + 1e-6  # no nearer image left out
    assert len(ok(client.get("/api/objects/5/neighbours", params={"n": 500}))["objects"]) == 79
    assert client.get("/api/objects/99999/neighbours").status_code == 404

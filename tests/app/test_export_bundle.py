"""A classifier bundle from the app's validated labels: few-shot adaptation's fit on the project's cached features
(``app.export.export_bundle``, ``diffprobe app export --bundle``). The API's endpoint is tested in test_api.py."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from diffprobe.app.export import export_bundle
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.utils import DiffprobeError


def by_true_class(project) -> dict[str, list[int]]:
    """Object ids per true class (the class folder of the tiny project's images)."""
    found: dict[str, list[int]] = {}
    for r in project.store.all_objects():
        found.setdefault(Path(r["path"]).parts[0], []).append(r["id"])
    return dict(sorted(found.items()))


def validate(project, ids: list[int], label: str) -> None:
    project.store.decide(ids, "move", user="ann", label=label, new_class=label not in project.store.classes())


def test_the_bundle_learns_the_validated_labels_and_a_new_class(project):
    truth = by_true_class(project)
    names = list(truth)
    kept, renamed, lonely = names[:5], names[5], names[6]
    for c in kept:
        validate(project, truth[c][:6], c)
    validate(project, truth[renamed][:6], "Noctiluca")  # a class named in the app, unknown to the model
    validate(project, truth[lonely][:2], lonely)  # too few: left out, and named

    r = export_bundle(project)
    assert r["path"] == str(project.root / "bundle")
    bundle = ClassifierBundle.load(r["path"])
    assert bundle.classes == kept + ["Noctiluca"] and r["left_out"] == {lonely: 2}
    assert bundle.preprocess == ClassifierBundle.load(project.info["model"]).preprocess  # how the features were made
    origin = json.loads((Path(r["path"]) / "bundle.json").read_text())["adapted"]
    assert origin["project"] == project.name and origin["per_class"] == dict.fromkeys(kept + ["Noctiluca"], 6)
    assert datetime.fromisoformat(origin["time"]).tzinfo is not None and origin["n_images"] == 36
    assert (Path(r["path"]) / "adapt.json").is_file() and bundle.meta["unknown"]["thresholds"]["msp"] > 0

    # The bundle reads the images itself, and predicts as its head does on the project's cached features.
    label = {i: c for c in kept for i in truth[c]} | {i: "Noctiluca" for i in truth[renamed]}
    ids = sorted(label)
    files = [project.image_file(project.store.get(i)["path"]) for i in ids]
    predicted = np.asarray(bundle.predict(files))
    cached = np.asarray(bundle.classes)[bundle.head.logits(np.asarray(project.features()[ids])).argmax(1)]
    assert (predicted == cached).mean() >= 0.95
    right = predicted == np.asarray([label[i] for i in ids])
    validated = np.isin(ids, [i for c in [*kept, renamed] for i in truth[c][:6]])
    # chance: 1 in 6. The tiny project's backbone is barely trained (on purpose), so the images nobody validated
    # are near chance; what is tested here is that the bundle learnt the validated labels through its own reading.
    assert right[validated].mean() > 0.6


def test_too_few_validated_images_are_refused_saying_how_many_are_needed(project):
    truth = by_true_class(project)
    a, b = list(truth)[:2]
    validate(project, truth[a][:6], a)
    validate(project, truth[b][:3], b)
    with pytest.raises(DiffprobeError, match=rf"at least 2 classes with 5 or more validated images.*{a} 6, {b} 3"):
        export_bundle(project)
    assert not (project.root / "bundle").exists()
    with pytest.raises(DiffprobeError, match="at least 2"):
        export_bundle(project, min_per_class=1)
    assert export_bundle(project, min_per_class=3)["per_class"] == {a: 6, b: 3}


def test_the_cli_writes_the_bundle_beside_the_labels(project_dir, tmp_path, capsys):
    from diffprobe.app.project import Project
    from diffprobe.cli import main

    p = Project.open(project_dir)
    try:
        truth = by_true_class(p)
        for c in list(truth)[:2]:
            validate(p, truth[c][:3], c)
    finally:
        p.close()
    out = tmp_path / "e"
    assert main(["app", "export", str(project_dir), "--out", str(out), "--bundle"]) == 2
    assert "5 or more validated images" in capsys.readouterr().err and not out.joinpath("project_ecotaxa.tsv").exists()
    assert main(["app", "export", str(project_dir), "--out", str(out), "--bundle", "--min-per-class", "3"]) == 0
    assert "2 classes from 6 validated images" in capsys.readouterr().out
    assert ClassifierBundle.load(out / "project_bundle").classes == list(truth)[:2]
    assert (out / "project_ecotaxa.tsv").is_file()

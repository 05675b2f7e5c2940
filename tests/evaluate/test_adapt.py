"""Few-shot adaptation: a new head on the frozen features, evaluated on images it never saw."""

import json

import numpy as np

from diffprobe.cli import main
from diffprobe.data.manifest import scan_folder
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.workflows.adapt import adapt_bundle


def test_adapt_learns_new_classes_from_a_few_labels(field_run, tmp_path):
    data = scan_folder(field_run["data"])
    rng = np.random.default_rng(0)
    few = np.zeros(len(data), bool)
    for c in data.classes:  # 10 labelled images per class; the rest are kept to test the adapted bundle
        few[rng.choice(np.flatnonzero(np.array(data.labels) == c), 10, replace=False)] = True
    r = adapt_bundle(field_run["bundle"], data.subset(few), tmp_path / "adapted", progress=False)
    assert r["n_images"] == 10 * len(data.classes) and set(r["per_class"].values()) == {10}
    adapted = ClassifierBundle.load(tmp_path / "adapted")
    assert adapted.classes == data.classes and adapted.preprocess.polarity == "auto"
    rest = data.subset(~few)
    files = [rest.full_path(i) for i in range(len(rest))]
    acc = np.mean([p == lab for p, lab in zip(adapted.predict(files), rest.labels)])
    assert acc > 3 / len(data.classes)  # far above chance (1 / 8) on unseen images
    assert json.loads((tmp_path / "adapted" / "adapt.json").read_text())["C"] in (0.01, 0.1, 1.0)


def test_adapt_cli_reports_cross_validated_scores(field_run, tmp_path, capsys):
    assert main(["adapt", "--model", str(field_run["bundle"]), "--data", str(field_run["data"]),
                 "--out", str(tmp_path / "a"), "--crop"]) == 0
    assert "cross-validated accuracy" in capsys.readouterr().out
    # The adapted bundle reads new images the way its head was fitted: cropped to the organism.
    assert ClassifierBundle.load(tmp_path / "a").preprocess.crop is True
    assert ClassifierBundle.load(field_run["bundle"]).preprocess.crop is False

"""Classifying new images: predictions CSV, skipped files, abundances, the Python API."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from diffprobe.cli import main
from diffprobe.data.io import read_image
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.predict import predict_files

COLUMNS = ["path", "label", "probability", "top2_label", "top2_probability", "top3_label", "top3_probability",
           "unknown"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def station_folders(field_run, tmp_path):
    """images/st1 (5 spiny_long), images/st2/deep (3 chain_five + a corrupt JPEG), images/notes.txt."""
    root = tmp_path / "images"
    for sub, cls, n in (("st1", "spiny_long", 5), ("st2/deep", "chain_five", 3)):
        (root / sub).mkdir(parents=True)
        for f in sorted((field_run["data"] / cls).glob("*.png"))[:n]:
            shutil.copy(f, root / sub / f.name)
    (root / "st2" / "deep" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("field notes")
    return root


def test_predict_folder_writes_predictions_skipped_and_abundances(field_run, station_folders, tmp_path, capsys):
    out = tmp_path / "out" / "preds.csv"
    assert main(["predict", "--model", str(field_run["bundle"]), str(station_folders), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8 images classified" in printed and "1 files could not be read" in printed

    with open(out, newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    rows = _rows(out)
    assert len(rows) == 8 and not any("broken" in r["path"] for r in rows)
    for r in rows:
        p = [float(r["probability"]), float(r["top2_probability"]), float(r["top3_probability"])]
        assert p == sorted(p, reverse=True) and sum(p) <= 1 + 1e-6
        assert len({r["label"], r["top2_label"], r["top3_label"]}) == 3
        assert r["unknown"] in ("True", "False")

    skipped = _rows(out.with_name("preds.skipped.csv"))
    assert [s["path"].endswith("broken.jpg") for s in skipped] == [True] and skipped[0]["reason"]

    ab = _rows(out.with_name("preds.abundance.csv"))
    assert {r["sample"] for r in ab} == {"images/st1", "images/st2/deep"}
    st1 = [r for r in ab if r["sample"] == "images/st1"]
    assert len(st1) == 8 and all(r["n_images"] == "5" for r in st1)
    assert sum(int(r["cc_count"]) for r in st1) == 5
    for method in ("cc", "acc", "em"):
        assert sum(float(r[f"{method}_share"]) for r in st1) == pytest.approx(1.0, abs=1e-4)


def test_python_api_in_three_lines(field_run, station_folders):
    from diffprobe import ClassifierBundle
    from diffprobe.evaluate.predict import predict_paths

    files = sorted((station_folders / "st1").glob("*.png")) + [station_folders / "missing.png"]
    bundle = ClassifierBundle.load(field_run["bundle"])
    rows = predict_paths(bundle, files)
    assert [r["path"] for r in rows] == [str(f) for f in files[:-1]]  # the missing file is left out
    # Same answer as the bundle's own predict_proba on the decoded images (it preprocesses them itself).
    probs = bundle.predict_proba([read_image(f) for f in files[:-1]])
    assert [r["label"] for r in rows] == [bundle.classes[k] for k in probs.argmax(1)]
    assert [r["probability"] for r in rows] == pytest.approx(probs.max(1), abs=1e-5)


def test_views_read_each_image_more_ways_from_the_api_and_the_command(field_run, station_folders, tmp_path):
    from diffprobe import ClassifierBundle

    files = sorted((station_folders / "st1").glob("*.png"))
    bundle = ClassifierBundle.load(field_run["bundle"])
    own = bundle.feature_spec().views
    one = bundle.predict_proba([read_image(f) for f in files])
    bundle = ClassifierBundle.load(field_run["bundle"], views=8 if own != 8 else 1)
    assert bundle.feature_spec().views == bundle.views != own
    other = bundle.predict_proba([read_image(f) for f in files])
    assert one.shape == other.shape and not np.allclose(one, other, atol=1e-4)
    out = tmp_path / "p8.csv"
    assert main(["predict", "--model", str(field_run["bundle"]), str(station_folders / "st1"), "--out", str(out),
                 "--views", str(bundle.views)]) == 0
    rows = sorted(csv.DictReader(out.open()), key=lambda r: r["path"])
    assert [float(r["probability"]) for r in rows] == pytest.approx(other.max(1), abs=1e-5)


def test_only_unreadable_files_is_an_error(field_run, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(DiffprobeError, match="none of the 1 files"):
        predict_files(field_run["bundle"], [bad], tmp_path / "p.csv", progress=False)
    assert (tmp_path / "p.skipped.csv").is_file()


def test_predict_kaggle_format_is_the_ndsb_submission_layout(field_run, station_folders, tmp_path, capsys):
    from diffprobe import ClassifierBundle

    out = tmp_path / "submission.csv"
    assert main(["predict", "--model", str(field_run["bundle"]), str(station_folders), "--out", str(out),
                 "--format", "kaggle"]) == 0
    assert "8 images classified" in capsys.readouterr().out
    bundle = ClassifierBundle.load(field_run["bundle"])
    with open(out, newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["image", *bundle.classes]  # the bundle's class order
    files = sorted(p for p in station_folders.rglob("*.png"))
    assert sorted(r[0] for r in rows) == sorted(p.name for p in files)  # file names, not paths
    probs = np.array([[float(x) for x in r[1:]] for r in rows])
    assert probs.shape == (8, len(bundle.classes)) and (probs > 0).all()
    assert probs.sum(1) == pytest.approx(1.0, abs=1e-4)
    by_name = {p.name: p for p in files}
    expected = bundle.predict_proba([by_name[r[0]] for r in rows])  # calibrated, as predict_proba
    assert probs == pytest.approx(expected, rel=1e-4, abs=1e-6)
    # The skipped list and abundances are written as with the default format.
    assert out.with_name("submission.abundance.csv").is_file()
    assert out.with_name("submission.skipped.csv").is_file()


def test_kaggle_format_refuses_repeated_file_names(field_run, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(next((field_run["data"] / "spiny_long").glob("*.png")), tmp_path / sub / "same.png")
    with pytest.raises(DiffprobeError, match="same.png"):
        predict_files(field_run["bundle"], [tmp_path / "a", tmp_path / "b"], tmp_path / "k.csv", progress=False,
                      format="kaggle")
    with pytest.raises(DiffprobeError, match="PredictConfig.format: Input should be 'csv' or 'kaggle', got 'tsv'"):
        predict_files(field_run["bundle"], [tmp_path / "a"], tmp_path / "k.csv", progress=False, format="tsv")

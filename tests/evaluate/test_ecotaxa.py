"""EcoTaxa TSV exports as labelled and unlabelled datasets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffprobe.data.dataset import load_images
from diffprobe.data.manifest import read_ecotaxa_tsv
from diffprobe.data.manifest import open_dataset
from diffprobe.data.preprocess import Preprocess
from diffprobe.utils import DiffprobeError

HEADER = ["object_id", "img_file_name", "img_rank", "object_annotation_status", "object_annotation_category",
          "object_annotation_hierarchy"]
ROWS = [
    ["[t]", "[t]", "[f]", "[t]", "[t]", "[t]"],
    ["o1", "s1/a.png", "0", "validated", "Copepoda", "living>Animalia>Copepoda"],
    ["o1", "s1/a_2.png", "1", "validated", "Copepoda", "living>Animalia>Copepoda"],
    ["o2", "s1/b.png", "0", "validated", "Diatoma", "living>Chromista>Diatoma"],
    ["o3", "s2/c.png", "0", "predicted", "Copepoda", "living>Animalia>Copepoda"],
    ["o4", "s2/d.png", "0", "validated", "", ""],
]


def _write(path, header=HEADER, rows=ROWS):
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def export(tmp_path):
    for name in ("s1/a.png", "s1/a_2.png", "s1/b.png", "s2/c.png", "s2/d.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((12, 10), 200, np.uint8)).save(tmp_path / name)
    return _write(tmp_path / "ecotaxa_export.tsv")


def test_labelled_keeps_validated_first_images_and_skips_type_row(export):
    m = read_ecotaxa_tsv(export)
    assert m.paths == ["s1/a.png", "s1/b.png"]
    assert m.labels == ["Copepoda", "Diatoma"]
    assert m.root == export.parent
    reasons = dict(m.ignored)
    assert "predicted" in reasons["s2/c.png"] and "object_annotation_category" in reasons["s2/d.png"]
    # Paths resolve against the TSV's folder, so the images load.
    arr = load_images(m, Preprocess(16), progress=False)
    assert arr.images.shape == (2, 16, 16) and not arr.skipped


def test_options_hierarchy_all_statuses_and_unlabelled(export):
    m = read_ecotaxa_tsv(export, label_column="object_annotation_hierarchy", statuses=None)
    assert m.labels == ["living>Animalia>Copepoda", "living>Chromista>Diatoma", "living>Animalia>Copepoda"]
    u = open_dataset(export, labelled=False)  # the .tsv suffix routes here
    assert u.paths == ["s1/a.png", "s1/b.png", "s2/c.png", "s2/d.png"] and u.labels == [None] * 4


def test_bom_and_no_type_row(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("\ufeff" + "\t".join(HEADER) + "\n" + "\t".join(ROWS[1]) + "\n", encoding="utf-8")
    assert read_ecotaxa_tsv(path).labels == ["Copepoda"]


def test_missing_columns_named(tmp_path):
    path = _write(tmp_path / "bad.tsv", header=["object_id", "img_file_name"], rows=[["o1", "a.png"]])
    with pytest.raises(DiffprobeError, match=r"bad\.tsv.*object_annotation_category"):
        read_ecotaxa_tsv(path)
    assert read_ecotaxa_tsv(path, labelled=False).paths == ["a.png"]
    path = _write(tmp_path / "nofile.tsv", header=["object_id", "object_annotation_category"], rows=[["o1", "x"]])
    with pytest.raises(DiffprobeError, match=r"nofile\.tsv.*img_file_name"):
        read_ecotaxa_tsv(path)


def test_no_validated_objects_says_which_statuses_exist(tmp_path):
    path = _write(tmp_path / "pred.tsv", rows=[ROWS[4]])
    with pytest.raises(DiffprobeError, match=r"pred\.tsv.*predicted"):
        read_ecotaxa_tsv(path)

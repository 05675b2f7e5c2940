from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from diffprobe.data import Manifest, make_setting, prepare_split, scan_folder, split_manifest
from diffprobe.utils import DiffprobeError


def _manifest(counts: dict[str, int]) -> Manifest:
    paths, labels = [], []
    for cls, n in counts.items():
        for i in range(n):
            paths.append(f"{cls}/{i:04d}.png")
            labels.append(cls)
    return Manifest("/nowhere", paths, labels)


def test_split_is_stratified_deterministic_and_disjoint():
    m = _manifest({"a": 100, "b": 40, "c": 7})
    s1 = split_manifest(m, val=0.15, test=0.15, seed=3)
    s2 = split_manifest(m, val=0.15, test=0.15, seed=3)
    assert s1.splits == s2.splits and s1.paths == s2.paths
    parts = {p: {x for x, s in zip(s1.paths, s1.splits) if s == p} for p in ("train", "val", "test")}
    assert not (parts["train"] & parts["val"]) and not (parts["train"] & parts["test"]) and not (
        parts["val"] & parts["test"])
    assert sum(len(v) for v in parts.values()) == len(m)
    for cls, n in {"a": 100, "b": 40}.items():
        for part, frac in (("val", 0.15), ("test", 0.15)):
            got = sum(1 for lab, s in zip(s1.labels, s1.splits) if lab == cls and s == part)
            assert got == round(frac * n)
    # A small class still gets one image in val and in test.
    small = Counter(s for lab, s in zip(s1.labels, s1.splits) if lab == "c")
    assert small["val"] >= 1 and small["test"] >= 1 and small["train"] >= 1


def test_different_seed_changes_split_and_class_split_is_independent_of_other_classes():
    m = _manifest({"a": 50, "b": 50})
    assert split_manifest(m, seed=0).splits != split_manifest(m, seed=1).splits
    only_a = split_manifest(_manifest({"a": 50}), seed=0)
    both = split_manifest(m, seed=0)
    assert only_a.splits == [s for lab, s in zip(both.labels, both.splits) if lab == "a"]


def test_too_small_class_is_left_out_with_a_warning(caplog):
    m = _manifest({"big": 30, "tiny": 2})
    s = split_manifest(m, seed=0, min_per_class=3)
    assert "tiny" not in s.classes
    assert "tiny" in caplog.text
    assert s.info["dropped_classes"] == ["tiny (2)"]


def test_bad_fractions_and_unlabelled_data_are_refused():
    with pytest.raises(DiffprobeError, match="fractions"):
        split_manifest(_manifest({"a": 10}), val=0.6, test=0.5)
    with pytest.raises(DiffprobeError, match="labels"):
        split_manifest(Manifest("/x", ["a.png"], [None]))


def test_balanced_setting_takes_n_per_class_from_classes_that_have_them():
    m = _manifest({"a": 120, "b": 80, "c": 79, "d": 300})
    bal = make_setting(m, "balanced", per_class=80, seed=0)
    assert bal.counts() == {"a": 80, "b": 80, "d": 80}
    assert make_setting(m, "balanced", per_class=80, seed=0).paths == bal.paths
    assert make_setting(m, "balanced", per_class=80, seed=1).paths != bal.paths
    nat = make_setting(m, "natural")
    assert nat.counts() == m.counts()
    with pytest.raises(DiffprobeError, match="lower --per-class"):
        make_setting(m, "balanced", per_class=500)


def test_manifest_roundtrip_keeps_split_and_root(tmp_path, synth_dir):
    m = prepare_split(synth_dir, seed=0)
    m.save(tmp_path / "split.csv")
    back = Manifest.load(tmp_path / "split.csv")
    assert back.paths == m.paths and back.labels == m.labels and back.splits == m.splits
    assert back.full_path(0).is_file()
    # A saved split is reused as is, not re-split.
    again = prepare_split(tmp_path / "split.csv", seed=99)
    assert again.splits == m.splits


def test_manifest_csv_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label,split\na.png,x,training\n")
    with pytest.raises(DiffprobeError, match=r"bad.csv, line 2: split 'training'"):
        Manifest.load(bad)
    nohead = tmp_path / "nohead.csv"
    nohead.write_text("file,cls\na.png,x\n")
    with pytest.raises(DiffprobeError, match="'path' column"):
        Manifest.load(nohead)


def test_unlabelled_folder_scan(tmp_path, synth_dir):
    m = scan_folder(synth_dir, labelled=False)
    assert len(m) == 8 * 40 and all(lab is None for lab in m.labels) and not m.labelled
    assert np.all([p.endswith(".png") for p in m.paths])


def test_relative_sidecar_root_counts_from_the_manifest_folder(tmp_path):
    """A manifest shipped with a model (models/ndsb/split.json: root '../../data') finds its images from any cwd."""
    m = _manifest({"a": 3})
    shipped = tmp_path / "repo" / "models" / "x"
    m.save(shipped / "split.csv")
    meta = (shipped / "split.json").read_text().replace('"/nowhere"', '"../../../data"')
    (shipped / "split.json").write_text(meta)
    loaded = Manifest.load(shipped / "split.csv")
    assert loaded.full_path(0).resolve() == (tmp_path / "data" / "a" / "0000.png").resolve()
    assert Manifest.load(shipped / "split.csv", root="/elsewhere").full_path(0) == Path("/elsewhere/a/0000.png")


def test_training_part_is_the_train_split_or_an_unsplit_folder_never_val_or_test():
    from diffprobe.data.dataset import ImageArray
    from diffprobe.data.preprocess import Preprocess

    def array(splits):
        n = len(splits)
        return ImageArray(np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8),
                          np.arange(n) % 2, ["a", "b"], np.array(splits), [f"{i}.png" for i in range(n)],
                          Preprocess(size=8))

    images, labels = array(["train", "val", "train", "test"]).training_part()
    assert images[:, 0, 0].tolist() == [0, 2] and labels.tolist() == [0, 0]
    assert len(array(["", "", ""]).training_part()[0]) == 3  # a folder without a split: all of it trains
    with pytest.raises(DiffprobeError, match="held.csv: the split has no train part"):
        array(["val", "test"]).training_part("held.csv")

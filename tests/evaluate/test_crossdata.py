"""Evaluation on other datasets: exact names, unknown classes, class maps, EcoTaxa TSV."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffprobe.cli import main
from diffprobe.evaluate.crossdata import read_class_map
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.datasets import write_synthetic
from diffprobe.workflows.evaluate import evaluate_bundle

MODEL = ["chain_five", "chain_three", "spiny_long", "spiny_short"]
DATA = ["Chains", "spiny", "Ring"]


def _map(tmp_path, text):
    p = tmp_path / "map.csv"
    p.write_text(text)
    return p


def test_class_map_groups_case_insensitively(tmp_path):
    cm = read_class_map(_map(tmp_path, "group,model_pattern,data_pattern\nchain,chain_*,chain*\n"
                                       "spiny,spiny_long,SPINY\nspiny,spiny_short,nothing*\n"), MODEL, DATA)
    assert cm.groups == ["chain", "spiny"]
    assert cm.model_groups.tolist() == [0, 0, 1, 1]
    assert cm.data_groups == {"Chains": 0, "spiny": 1}
    probs = np.array([[0.1, 0.2, 0.3, 0.4]])
    assert cm.group_probs(probs) == pytest.approx(np.array([[0.3, 0.7]]))


@pytest.mark.parametrize("text, match", [
    ("group,model_pattern,data_pattern\nchain,chain_*,chain*\ncopepod,copepod_*,copepoda\n",
     r"map\.csv, line 3 \(group 'copepod'\): model_pattern 'copepod_\*' matches no class"),
    ("group,model_pattern,data_pattern\na,chain_*,chain*\nb,chain_five,spiny\n", r"line 3.*'chain_five'.*two groups"),
    ("group,model_pattern,data_pattern\na,chain_*,*\nb,spiny_*,spiny\n", r"data class 'spiny' is in two groups"),
    ("group,model\na,chain_*\n", r"missing column.*data_pattern"),
    ("group,model_pattern,data_pattern\na,,x\n", r"line 2: every row needs"),
])
def test_class_map_errors_name_the_row(tmp_path, text, match):
    with pytest.raises(DiffprobeError, match=match):
        read_class_map(_map(tmp_path, text), MODEL, DATA)


def test_evaluate_test_part_matches_the_probe(field_run, predictions, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(field_run["bundle"]), "--data", str(field_run["split"]),
                 "--part", "test", "--out", str(out)]) == 0
    r = json.loads((out / "metrics.json").read_text())
    bundle = json.loads((field_run["bundle"] / "bundle.json").read_text())
    # Image by image, the images read again get the classes the probe gave their stored features (one borderline
    # image may flip under bf16), and evaluate's accuracy is that of these predictions.
    reread, labels = predictions.reread(field_run["bundle"], field_run["split"])
    flips = predictions.flips(reread, predictions.from_store(field_run["bundle"], field_run["store"]))
    assert r["accuracy"] == pytest.approx((reread == labels).mean(), abs=1e-9)
    assert abs(r["accuracy"] - bundle["metrics"]["test_accuracy"]) <= flips / len(labels) + 1e-9
    # One flipped image moves two classes' F1 of six images each: at most about 0.05 of the macro average.
    assert r["macro_f1"] == pytest.approx(bundle["metrics"]["test_macro_f1"], abs=0.05 * flips + 1e-9)
    assert r["n_images"] == 48 and r["n_skipped"] == 0 and r["mode"] == "class names"
    assert set(r["per_class"]) == set(bundle["classes"])
    assert sum(p["n"] for p in r["per_class"].values()) == 48
    assert r["calibration"]["temperature"] == pytest.approx(bundle["temperature"])
    assert 0 <= r["calibration"]["ece_after"] <= 1 and 0 <= r["calibration"]["ece_before"] <= 1
    assert set(r["abundance"]["prior_shift"]["mean_error"]) == {"cc", "acc", "em"}
    assert 0 <= r["flagged_unknown_share"] <= 1 and "openset" not in r
    assert (out / "confusion.png").stat().st_size > 0
    assert "Macro F1" in (out / "report.md").read_text()
    assert "accuracy" in capsys.readouterr().out


def test_unknown_classes_are_skipped_counted_and_used_for_openset(field_run, tmp_path):
    data = write_synthetic(tmp_path / "other", n_per_class=6, size=32, seed=7,
                           classes=["chain_five", "spiny_long", "ring_thin", "ring_thick"])
    r = evaluate_bundle(field_run["bundle"], data, tmp_path / "eval", progress=False)
    assert r["n_images"] == 12 and r["n_skipped"] == 12
    assert r["skipped_by_class"] == {"ring_thick": 6, "ring_thin": 6}
    o = r["openset"]
    assert o["n_known"] == 12 and o["n_unknown"] == 12
    assert 0 <= o["auroc_msp"] <= 1 and 0 <= o["auroc_energy"] <= 1
    assert 0 <= o["known_accepted"] <= 1 and 0 <= o["unknown_rejected"] <= 1
    assert set(r["per_class"]) <= {"chain_five", "spiny_long"} | set(json.loads(
        (field_run["bundle"] / "bundle.json").read_text())["classes"])


def test_no_shared_class_names_asks_for_a_class_map(field_run, tmp_path):
    (tmp_path / "d" / "Copepoda").mkdir(parents=True)
    (tmp_path / "d" / "Copepoda" / "x.png").write_bytes(
        (field_run["data"] / "chain_five" / "chain_five_00000.png").read_bytes())
    with pytest.raises(DiffprobeError, match="--class-map"):
        evaluate_bundle(field_run["bundle"], tmp_path / "d", tmp_path / "eval", progress=False)


def test_family_level_evaluation_of_an_ecotaxa_export(field_run, tmp_path):
    """Data labelled at another level (EcoTaxa categories), evaluated through a class map."""
    data = field_run["data"]
    rows = ["img_file_name\tobject_annotation_category\tobject_annotation_status", "[t]\t[t]\t[t]"]
    truth = {}
    for cls in ("chain_three", "chain_five", "spiny_short", "spiny_long", "ring_thin"):
        family = {"chain": "Catenata", "spiny": "Spinosa", "ring": "Annulata"}[cls.split("_")[0]]
        for f in sorted((data / cls).glob("*.png"))[:6] if cls != "ring_thin" else []:
            rows.append(f"{cls}/{f.name}\t{family}\tvalidated")
            truth[f"{cls}/{f.name}"] = family
    rows.append("elongated_thin/elongated_thin_00000.png\tAcantharia\tvalidated")
    (data / "export.tsv").write_text("\n".join(rows) + "\n")
    cmap = _map(tmp_path, "group,model_pattern,data_pattern\nchains,chain_*,catenata\nspiny,spiny_*,spinosa\n")
    out = tmp_path / "eval"
    try:
        r = evaluate_bundle(field_run["bundle"], data / "export.tsv", out, class_map=cmap, progress=False)
    finally:
        (data / "export.tsv").unlink()
    assert r["mode"] == "class map" and set(r["per_class"]) <= {"chains", "spiny"}
    assert r["n_images"] == 24 and r["n_skipped"] == 1 and r["skipped_by_class"] == {"Acantharia": 1}
    assert "openset" not in r and "abundance" not in r
    # Two groups of two fine classes: far easier than the 8-way problem.
    assert r["accuracy"] >= 0.7
    assert (out / "confusion.png").is_file()

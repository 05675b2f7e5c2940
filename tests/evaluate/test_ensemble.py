"""Reading ensembles: bundles of one backbone that read each image their own way (or each on its own backbone),
log-probabilities averaged,
used by predict, evaluate, shift, calibrate and export as a bundle; refused where one bundle's head is needed."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy.special import log_softmax, softmax

from diffprobe import ClassifierBundle
from diffprobe.app.project import init_project
from diffprobe.cli import main
from diffprobe.data.manifest import Manifest, scan_folder
from diffprobe.probe import ReadingEnsemble, build_ensemble, load_bundle
from diffprobe.probe.linear import LinearHead
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.adapt import adapt_bundle
from diffprobe.workflows.calibrate import calibrate_bundle
from diffprobe.workflows.evaluate import evaluate_bundle
from diffprobe.workflows.export_model import export_model
from diffprobe.workflows.predict import predict_files
from diffprobe.workflows.shifts import run_shift_suite


@pytest.fixture(scope="module")
def members(field_run, tmp_path_factory):
    """``frame``: the tiny run's bundle as framed; ``crop``: the same backbone reading each image cut to its organism,
    with another head (the frame head's weights perturbed), so the two members disagree."""
    root = tmp_path_factory.mktemp("members")
    crop = ClassifierBundle.load(field_run["bundle"])
    h = crop.head
    noise = np.random.default_rng(0).normal(0, 0.5, h.weight.shape).astype(np.float32)
    crop.head = LinearHead(h.weight + noise, h.bias, h.mean, h.std)
    crop.meta["preprocess"] = {**crop.meta["preprocess"], "crop": True}
    return {"frame": field_run["bundle"], "crop": crop.save_pretrained(root / "crop")}


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "ensemble"
    assert main(["ensemble", str(members["crop"]), str(members["frame"]), "--out", str(out)]) == 0
    return out


def _images(field_run, n=3):
    return sorted((field_run["data"] / "spiny_long").glob("*.png"))[:n] + \
        sorted((field_run["data"] / "chain_five").glob("*.png"))[:n]


def test_the_folder_holds_one_backbone_and_a_folder_per_member(ensemble, members):
    assert sorted(p.name for p in ensemble.iterdir()) == ["backbone", "bundle.json", "crop", "frame"]
    assert sorted(p.name for p in (ensemble / "crop").iterdir()) == ["bundle.json", "probe.safetensors"]
    meta = json.loads((ensemble / "bundle.json").read_text())
    frame = json.loads((members["frame"] / "bundle.json").read_text())
    assert meta["format"] == 3 and meta["members"] == ["crop", "frame"] and meta["temperature"] == 1.0
    assert meta["classes"] == frame["classes"] and "unknown" not in meta  # uncalibrated until 'calibrate'
    assert meta["metrics"]["test_accuracy"] is None and meta["metrics"]["members"]["frame"] == frame["metrics"]


def test_logits_are_the_mean_of_the_members_log_softmax(ensemble, members, field_run):
    e = load_bundle(ensemble, precision="fp32")
    assert isinstance(e, ReadingEnsemble) and e.names == ["crop", "frame"]
    assert all(m.backbone is e.backbone for m in e.members)  # one backbone object, read twice
    files = _images(field_run)
    images, meta = e.prepare(files)
    assert images.shape == (len(files), 2, 16, 16) and meta.shape[:2] == (len(files), 2)
    alone = [ClassifierBundle.load(members[name], precision="fp32") for name in ("crop", "frame")]
    by_hand = np.mean([log_softmax(b.logits(*b.prepare(files)), axis=1) for b in alone], axis=0)
    np.testing.assert_allclose(e.logits(images, meta), by_hand, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e.predict_proba(files), softmax(by_hand / e.temperature, axis=1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(by_hand, log_softmax(alone[1].logits(*alone[1].prepare(files)), axis=1))
    with pytest.raises(DiffprobeError, match=r"\(N, 2, 16, 16\)"):
        e.logits(images[:, 0], meta[:, 0])


def test_a_member_folder_loads_alone_on_the_shared_backbone(ensemble, members, field_run):
    member = ClassifierBundle.load(ensemble / "crop", precision="fp32")
    assert member.backbone.path == ensemble / "backbone" and member.preprocess.crop is True
    source = ClassifierBundle.load(members["crop"], precision="fp32")
    files = _images(field_run, 2)
    np.testing.assert_array_equal(member.predict_proba(files), source.predict_proba(files))


def test_members_on_their_own_backbones_make_a_model_ensemble(members, field_run, tmp_path):
    export_model(members["frame"], tmp_path / "half", progress=False)  # fp16 backbone: other weights
    e = build_ensemble([members["crop"], tmp_path / "half"], tmp_path / "e")
    assert (e / "frame" / "backbone").is_dir() and not (e / "crop" / "backbone").exists()
    files = _images(field_run)
    alone = [load_bundle(b) for b in (members["crop"], tmp_path / "half")]
    expected = np.mean([log_softmax(b.logits(*b.prepare(files)), axis=1) for b in alone], axis=0)
    ens = load_bundle(e)
    assert ens.members[1].backbone is not ens.backbone
    np.testing.assert_allclose(log_softmax(np.log(ens.predict_proba(files)), axis=1),
                               log_softmax(expected, axis=1), atol=1e-5)
    copy = ens.save_pretrained(tmp_path / "copy")
    assert (copy / "frame" / "backbone").is_dir() and not (copy / "crop" / "backbone").exists()
    np.testing.assert_array_equal(load_bundle(copy).predict_proba(files), ens.predict_proba(files))
    export_model(e, tmp_path / "shipped", progress=False)  # fp16: the member's own backbone too
    for weights in (tmp_path / "shipped" / "frame" / "backbone").rglob("*.safetensors"):
        with safe_open(weights, "pt") as st:
            assert {st.get_tensor(k).dtype for k in st.keys() if st.get_tensor(k).is_floating_point()} == \
                {torch.float16}


def test_build_refuses_other_classes_and_bad_names(ensemble, members, tmp_path):
    shuffled = ClassifierBundle.load(members["frame"])
    shuffled.meta["classes"] = shuffled.classes[::-1]
    shuffled.save_pretrained(tmp_path / "shuffled")
    with pytest.raises(DiffprobeError, match="classes differ"):
        build_ensemble([members["crop"], tmp_path / "shuffled"], tmp_path / "e")
    with pytest.raises(DiffprobeError, match="two bundles or more"):
        build_ensemble([members["crop"]], tmp_path / "e")
    with pytest.raises(DiffprobeError, match="must differ"):
        build_ensemble([members["crop"], members["frame"]], tmp_path / "e", names=["a", "a"])
    with pytest.raises(DiffprobeError, match="one name per bundle"):
        build_ensemble([members["crop"], members["frame"]], tmp_path / "e", names=["a"])
    with pytest.raises(DiffprobeError, match="not empty"):
        build_ensemble([members["crop"], members["frame"]], ensemble)
    assert not (tmp_path / "e").exists()
    # Member names follow each bundle's crop setting; where they repeat, their order.
    assert json.loads((build_ensemble([members["frame"], members["frame"]], tmp_path / "twice") / "bundle.json")
                      .read_text())["members"] == ["member0", "member1"]


def test_save_pretrained_round_trips_with_identical_probabilities(ensemble, field_run, tmp_path):
    e = load_bundle(ensemble)
    e.meta["temperature"] = 1.7  # a change made in memory is saved too
    out = e.save_pretrained(tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == ["backbone", "bundle.json", "crop", "frame"]
    assert not (out / "frame" / "backbone").exists()
    again = load_bundle(out)
    assert isinstance(again, ReadingEnsemble) and again.meta == e.meta and again.temperature == 1.7
    files = _images(field_run)
    np.testing.assert_array_equal(again.predict_proba(files), e.predict_proba(files))
    with pytest.raises(DiffprobeError, match="loaded from"):
        e.save_pretrained(ensemble)


def test_predict_and_shift_read_the_ensemble(ensemble, field_run, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for f in _images(field_run, 2):
        shutil.copy(f, folder / f.name)
    (folder / "broken.png").write_bytes(b"not an image")
    r = predict_files(ensemble, [folder], tmp_path / "preds.csv", progress=False)
    with open(tmp_path / "preds.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    classes = load_bundle(ensemble).classes
    assert r["n_images"] == len(rows) == 4 and r["n_skipped"] == 1
    assert all(row["label"] in classes and 0 < float(row["probability"]) <= 1 for row in rows)
    s = run_shift_suite(ensemble, field_run["split"], tmp_path / "shift", shifts=("noise",), severities=(1,),
                        progress=False)
    assert s["n_images"] == int(Manifest.load(field_run["split"]).split_mask("test").sum())


def test_calibrate_then_export_ships_the_ensemble_evaluated_on_test(ensemble, members, field_run, tmp_path, capsys):
    ens = shutil.copytree(ensemble, tmp_path / "ensemble")
    f = calibrate_bundle(ens, field_run["split"], progress=False)
    meta = json.loads((ens / "bundle.json").read_text())
    assert meta["temperature"] == f["temperature"] != 1.0 and meta["unknown"] == f["unknown"]
    assert f["calibration"]["n_images"] == int(Manifest.load(field_run["split"]).split_mask("val").sum())
    # Members refitted on train + val take the calibration of their train-only ensemble, as fuse --refit does.
    refit = build_ensemble([members["crop"], members["frame"]], tmp_path / "refit", calibration_from=ens)
    taken = json.loads((refit / "bundle.json").read_text())
    assert {k: taken[k] for k in ("temperature", "unknown", "val_confusion")} == \
        {k: meta[k] for k in ("temperature", "unknown", "val_confusion")}
    with pytest.raises(DiffprobeError, match="not calibrated yet"):
        build_ensemble([members["crop"], members["frame"]], tmp_path / "r2", calibration_from=ensemble)
    out = tmp_path / "model"
    assert main(["export", str(ens), "--out", str(out), "--split", str(field_run["split"]), "--fp16-head",
                 "--polarity", "auto"]) == 0
    for weights in [*(out / "backbone").rglob("*.safetensors"), out / "crop" / "probe.safetensors",
                    out / "frame" / "probe.safetensors"]:
        with safe_open(weights, "pt") as st:
            assert {st.get_tensor(k).dtype for k in st.keys()} == {torch.float16}
    pre = {n: json.loads((out / n / "bundle.json").read_text())["preprocess"] for n in ("crop", "frame")}
    assert pre["crop"]["polarity"] == pre["frame"]["polarity"] == "auto"
    assert pre["crop"].get("crop") is True and "crop" not in pre["frame"]  # each member keeps its own reading
    card = json.loads((out / "test_metrics.json").read_text())
    assert card["n_images"] == int(Manifest.load(field_run["split"]).split_mask("test").sum())
    assert card["bundle_test_accuracy"] is None  # an ensemble has no test score of its own before this one
    again = evaluate_bundle(out, out / "split.csv", tmp_path / "eval", part="test", progress=False)
    assert again["accuracy"] == card["accuracy"] > again["chance_accuracy"]
    assert main(["export", str(ens), "--out", str(tmp_path / "m2"), "--crop"]) == 2
    assert "refused for a reading ensemble" in capsys.readouterr().err and not (tmp_path / "m2").exists()


def test_the_app_and_adapt_refuse_an_ensemble_and_take_a_member(ensemble, field_run, tmp_path, capsys):
    message = r"reading ensemble .* pass one member folder instead \(e\.g\. .*crop\)"
    for load in (ClassifierBundle.load, ClassifierBundle.load_head):
        with pytest.raises(DiffprobeError, match=message):
            load(ensemble)
    with pytest.raises(DiffprobeError, match=message):
        adapt_bundle(load_bundle(ensemble), field_run["data"], tmp_path / "a", progress=False)
    with pytest.raises(DiffprobeError, match=message):
        init_project(tmp_path / "project", field_run["data"] / "chain_five", ensemble, progress=False)
    assert main(["adapt", "--model", str(ensemble), "--data", str(field_run["data"]),
                 "--out", str(tmp_path / "a")]) == 2
    assert "pass one member folder instead" in capsys.readouterr().err
    data = scan_folder(field_run["data"])
    few = data.subset([i % 8 == 0 for i in range(len(data))])  # 5 labelled images per class
    adapt_bundle(ensemble / "crop", few, tmp_path / "adapted", progress=False)
    adapted = ClassifierBundle.load(tmp_path / "adapted")  # a bundle of its own, with its backbone copied in
    assert (tmp_path / "adapted" / "backbone").is_dir() and adapted.preprocess.crop is True


def test_a_teachers_probabilities_of_the_train_images(ensemble, field_run):
    from diffprobe.workflows.study import teacher_train_probs

    train = Manifest.load(field_run["split"]).split_mask("train")
    probs = teacher_train_probs(ensemble, field_run["split"])
    assert probs.shape == (int(train.sum()), len(load_bundle(ensemble).classes))
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    m = Manifest.load(field_run["split"])
    files = [m.full_path(i) for i in np.flatnonzero(train)[:4]]
    np.testing.assert_allclose(probs[:4], load_bundle(ensemble).predict_proba(files), atol=1e-5)

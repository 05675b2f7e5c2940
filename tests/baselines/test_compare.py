"""``diffprobe compare``: every method, both settings, one split per setting, one budget, one probe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffprobe.backbones.ddpm_unet import UNetConfig
from diffprobe.workflows import compare as cmp
from diffprobe.pretrain.baselines import BaselineConfig
from diffprobe.pretrain.ddpm import PretrainConfig
from diffprobe.probe.linear import GridProbe
from diffprobe.utils import DiffprobeError, read_json

STEPS, BATCH = 20, 32
BUDGET = STEPS * BATCH  # 640 training images seen by every method


@pytest.fixture(scope="module")
def tiny_configs(tiny_config):
    configs = {m: tiny_config(m, STEPS) for m in ("supervised", "simclr", "dino", "mae")}
    configs["ddpm"] = PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=STEPS, batch_size=BATCH,
                                     lr=1e-3, warmup_steps=5, checkpoint_every=0, seed=0)
    return configs


def _run(data, out, configs):
    return cmp.compare(data, out, budget_images=BUDGET, image_size=16, per_class=30, configs=configs,
                       timesteps=(10, 100), probe=GridProbe(epochs=15, seed=0), shots=(10, 25), progress=False)


@pytest.mark.slow
def test_compare_runs_every_method_in_both_settings_and_reuses_trained_runs(long_tail_dir, tiny_configs, tmp_path):
    out = tmp_path / "cmp"
    r = _run(long_tail_dir, out, tiny_configs)

    methods = list(cmp.METHODS)
    assert r["trained"] == [f"{s}/{m}" for s in ("natural", "balanced") for m in methods] and r["reused"] == []
    saved = json.loads((out / "compare.json").read_text())
    assert saved["rows"] == r["rows"]
    for setting in ("natural", "balanced"):
        rows = [x for x in r["rows"] if x["setting"] == setting]
        assert [(x["method"], x["eval"]) for x in rows] == (
            [("ddpm", "linear probe"), ("supervised", "linear probe"), ("supervised", "end to end")]
            + [(m, "linear probe") for m in ("simclr", "dino", "mae")])
        results = {x["method"]: read_json(f"{x['probe_dir']}/results.json") for x in rows if "probe_dir" in x}
        # One split per setting, shared by all methods; the same probe protocol for all.
        assert len({json.dumps(res["split_sizes"]) for res in results.values()}) == 1
        assert len({json.dumps(res["probe"]["weight_decays"]) for res in results.values()}) == 1
        for x in rows:
            assert x["images_seen"] == BUDGET and x["params"] > 0 and x["train_seconds"] > 0
            for k in ("accuracy", "macro_f1", "balanced_accuracy"):
                assert 0.0 <= x[k] <= 1.0
            if x["eval"] == "linear probe":
                assert np.isfinite(x["nmi"]) and np.isfinite(x["ari"])
                assert x["timestep"] in ((10, 100) if x["method"] == "ddpm" else (0,))
        sup = next(x for x in rows if x["method"] == "supervised" and x["eval"] == "linear probe")
        assert sup["balanced_accuracy"] > 1.5 / r["splits"][setting]["n_classes"]  # uniform chance: 1 / n_classes

    groups = r["splits"]["natural"]["groups"]
    assert [len(groups[g]) for g in ("head", "medium", "tail")] == [4, 3, 1]  # 70 .. 8 train images
    nat = next(x for x in r["rows"] if x["setting"] == "natural" and x["method"] == "mae")
    assert all(0.0 <= nat[f"f1_{g}"] <= 1.0 for g in ("head", "medium", "tail"))
    # Balanced: every class has the same train count, so one group holds them all.
    bal = r["splits"]["balanced"]["groups"]
    assert sorted(len(v) for v in bal.values()) == [0, 0, 5]

    md = (out / "compare.md").read_text()
    assert "| ddpm | linear probe |" in md and "| supervised | end to end |" in md and "F1 tail" in md
    assert (out / "compare.png").stat().st_size > 10_000

    models = sorted(out.glob("*/*/run/*.safetensors")) + sorted(out.glob("*/ddpm-*/run/unet/*.safetensors"))
    assert len(models) == 10
    mtimes = [p.stat().st_mtime_ns for p in models]

    again = _run(long_tail_dir, out, tiny_configs)
    assert again["trained"] == [] and len(again["reused"]) == 10
    assert [p.stat().st_mtime_ns for p in models] == mtimes
    assert [x["accuracy"] for x in again["rows"]] == [x["accuracy"] for x in r["rows"]]


def test_definitions_budget_and_cli_defaults(tiny_configs, long_tail_dir, tmp_path):
    groups = cmp.shot_groups(np.array([150, 101, 100, 20, 19, 0]), (20, 100))
    assert groups == {"head": [0, 1], "medium": [2, 3], "tail": [4, 5]}
    assert cmp.group_f1(np.array([1.0, 0.5, 0.2, 0.4, 0.0, 0.0]), {"head": [0, 1], "medium": [], "tail": [2, 3]}) \
        == {"f1_head": 0.75, "f1_medium": None, "f1_tail": pytest.approx(0.3)}

    with pytest.raises(DiffprobeError, match="same budget"):
        _run(long_tail_dir, tmp_path / "x", {**tiny_configs, "mae": tiny_configs["mae"].__class__(
            **{**tiny_configs["mae"].to_dict(), "budget_images": 2 * BUDGET})})
    with pytest.raises(DiffprobeError, match="unknown or missing"):
        cmp.compare(long_tail_dir, tmp_path / "y", methods=("ddpm", "byol"))

    d = cmp.default_configs(budget_images=200_000)
    assert {m: cmp.images_seen(c) for m, c in d.items()} == {"ddpm": 200_000, "supervised": 200_064,
                                                            "simclr": 200_064, "dino": 200_064, "mae": 200_064}
    # The comparison's default budget is the baselines' own (one setting, config.pretrain.BaselineConfig).
    assert cmp.DEFAULT_BUDGET == BaselineConfig.budget_images == 200_000


def test_baseline_cli_trains_a_backbone_the_features_command_reads(long_tail_dir, tmp_path):
    from diffprobe.cli import main

    out = tmp_path / "simclr"
    assert main(["baseline", "--method", "simclr", "--data", str(long_tail_dir), "--out", str(out),
                 "--image-size", "16", "--budget-images", "64", "--batch-size", "32",
                 "--resnet-widths", "8,16,16,32", "--resnet-depths", "1,1,1,1"]) == 0
    assert read_json(out / "summary.json")["images_seen"] == 64
    assert main(["features", "--model", str(out), "--data", str(out / "split.csv"), "--out", str(tmp_path / "f"),
                 "--timesteps", "0"]) == 0
    assert main(["features", "--model", str(out), "--data", str(out / "split.csv"), "--out", str(tmp_path / "g"),
                 "--timesteps", "0,10"]) == 2


def test_label_subsets_hold_the_asked_count_of_every_class_and_all_of_a_smaller_one():
    from diffprobe.probe.label_curve import per_class_subset

    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    rows = np.arange(18)  # the last two images (class 2) are not in the train part
    pick = per_class_subset(labels, rows, 5, np.random.default_rng(0))
    assert np.bincount(labels[pick]).tolist() == [5, 3, 5] and set(pick) <= set(rows)
    assert np.array_equal(pick, per_class_subset(labels, rows, 5, np.random.default_rng(0)))
    assert not np.array_equal(pick, per_class_subset(labels, rows, 5, np.random.default_rng(1)))


@pytest.mark.slow  # trains every method at two budgets
def test_compare_curves_runs_each_budget_once_and_probes_with_few_labels(long_tail_dir, tiny_configs, tmp_path):
    configs = {m: tiny_configs[m] for m in ("ddpm", "supervised")}
    kw = dict(budgets=(BUDGET, BUDGET // 2), label_shots=(1, 5, None), draws=2, methods=("ddpm", "supervised"),
              settings=("natural",), configs=configs, image_size=16, timesteps=(10,),
              probe=GridProbe(epochs=15, seed=0), shots=(10, 25), progress=False)
    r = cmp.compare_curves(long_tail_dir, tmp_path / "curves", **kw)

    assert r["budgets"] == [BUDGET // 2, BUDGET]
    assert sorted((x["budget_images"], x["method"], x["eval"]) for x in r["rows"]) == sorted(
        (b, m, e) for b in r["budgets"] for m, e in (("ddpm", "linear probe"), ("supervised", "linear probe"),
                                                     ("supervised", "end to end")))
    for x in r["rows"]:
        assert x["images_seen"] >= x["budget_images"] and x["cpu_hours"] > 0
    n_classes = read_json(tmp_path / "curves" / f"budget-{BUDGET}" / "compare.json")["splits"]["natural"]["n_classes"]
    for method in ("ddpm", "supervised"):
        curve = [x for x in r["label_curves"] if x["method"] == method]
        assert [x["shots"] for x in curve] == [1, 5, None]
        assert curve[0]["n_train"] == n_classes and len(curve[0]["draws"]) == 2 and len(curve[2]["draws"]) == 1
        assert curve[0]["n_train"] < curve[1]["n_train"] < curve[2]["n_train"]
        assert all(0 <= x["accuracy_mean"] <= 1 and x["accuracy_std"] >= 0 for x in curve)
        best = next(x for x in r["rows"] if x["method"] == method and x["budget_images"] == BUDGET
                    and x["eval"] == "linear probe")
        assert (curve[0]["block"], curve[0]["timestep"]) == (best["block"], best["timestep"])
        # All labels: the same probe on the same features as the comparison's own row.
        assert curve[2]["accuracy_mean"] == pytest.approx(best["accuracy"])
    md = (tmp_path / "curves" / "curves.md").read_text()
    assert "| ddpm | linear probe | " in md and "| supervised | end to end |" in md
    for name in ("compute", "labels"):
        assert (tmp_path / "curves" / f"curves_{name}.png").stat().st_size > 10_000

    again = cmp.compare_curves(long_tail_dir, tmp_path / "curves", **kw)  # every run cached: nothing trained
    assert all(v["trained"] == [] for v in again["runs"].values()) and again["label_curves"] == r["label_curves"]


@pytest.mark.slow  # trains and reads every method
def test_compare_reads_every_method_the_recipe_way_when_asked(long_tail_dir, tiny_configs, tmp_path):
    from diffprobe.config.probe import FusionConfig

    fusion = FusionConfig(ks=(1, 2, 3), head="mlp", metadata=True, metadata_weight=2.0)
    r = cmp.compare(long_tail_dir, tmp_path / "cmp", methods=("ddpm", "supervised"), settings=("natural",),
                    budget_images=BUDGET, image_size=16, configs=tiny_configs, timesteps=(10,),
                    probe=GridProbe(epochs=15, seed=0), shots=(10, 25), fusion=fusion, progress=False)
    name = cmp.readout_name(fusion.head, fusion.metadata)
    assert name == "MLP, top-k pairs + measurements"
    assert [(x["method"], x["eval"]) for x in r["rows"]] == [
        ("ddpm", "linear probe"), ("ddpm", name), ("supervised", "linear probe"), ("supervised", name),
        ("supervised", "end to end")]
    for row in (x for x in r["rows"] if x["eval"] == name):
        fused = read_json(f"{row['fusion_dir']}/fusion.json")
        # k chosen on val among the candidates, and the row reports that candidate's test numbers.
        best = max(fused["candidates"], key=lambda c: (c["val_accuracy"], -c["val_log_loss"], -c["k"]))
        assert row["block"] == f"top {best['k']}" and row["accuracy"] == best["test_accuracy"]
        assert fused["metadata_weight"] == 2.0 and len(fused["metadata"]) > 0
        assert 0.0 <= row["f1_head"] <= 1.0 and row["log_loss"] > 0
        assert not (tmp_path / row["fusion_dir"] / "bundle").exists()  # a comparison row, not a classifier
    assert r["fusion"] == {"ks": [1, 2, 3], "head": "mlp", "metadata": True, "metadata_weight": 2.0}
    assert f"| supervised | {name} |" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_command_reads_the_recipe_way_with_readout(long_tail_dir, tmp_path, capsys):
    from diffprobe.cli import main

    out = tmp_path / "cli"
    assert main(["compare", "--data", str(long_tail_dir), "--out", str(out), "--methods", "ddpm", "--settings",
                 "natural", "--budget-images", "320", "--image-size", "16", "--ddpm-channels", "16,32",
                 "--timesteps", "10,100", "--probe-epochs", "5", "--readout", "--ks", "1,2",
                 "--metadata-weight", "3"]) == 0
    saved = read_json(out / "compare.json")
    assert saved["fusion"] == {"ks": [1, 2], "head": "mlp", "metadata": True, "metadata_weight": 3.0}
    assert [x["eval"] for x in saved["rows"]] == ["linear probe", "MLP, top-k pairs + measurements"]
    assert "MLP, top-k pairs + measurements" in capsys.readouterr().out


def _piece(budget: int, device: str, seconds: float, acc: float, threads: int | None = 2) -> dict:
    rows = [{"setting": "natural", "method": m, "eval": "linear probe", "accuracy": acc, "macro_f1": acc / 2,
             "images_seen": budget, "train_seconds": seconds, "device": device} for m in ("ddpm", "mae")]
    return {"budget_images": budget, "threads": threads, "rows": rows}


def test_merge_joins_pieces_estimates_gpu_cpu_hours_and_keeps_the_largest_label_curve(tmp_path):
    """A grid built in pieces: two budgets on a 2-thread CPU, the largest on a GPU in another folder."""
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    for b, secs in ((1000, 36.0), (2000, 72.0)):
        (cpu / f"budget-{b}").mkdir(parents=True)
        (cpu / f"budget-{b}" / "compare.json").write_text(json.dumps(_piece(b, "cpu", secs, 0.3 + b / 1e4)))
    (gpu / "budget-8000").mkdir(parents=True)
    (gpu / "budget-8000" / "compare.json").write_text(json.dumps(_piece(8000, "cuda", 6.0, 0.6, threads=16)))
    point = {"setting": "natural", "method": "ddpm", "shots": 1, "n_train": 3.0, "n_classes": 3,
             "accuracy_mean": 0.2, "accuracy_std": 0.01, "macro_f1_mean": 0.1, "macro_f1_std": 0.0, "draws": [{}, {}]}
    (cpu / "curves.json").write_text(json.dumps({"budgets": [1000, 2000], "label_curves": [point]}))
    (gpu / "curves.json").write_text(json.dumps({"budgets": [8000], "label_curves": [{**point, "accuracy_mean": 0.4}]}))

    r = cmp.merge_curves([cpu, gpu], tmp_path / "merged")

    assert r["budgets"] == [1000, 2000, 8000] and r["methods"] == ["ddpm", "mae"] and r["settings"] == ["natural"]
    by = {(x["method"], x["budget_images"]): x for x in r["rows"]}
    assert by["ddpm", 2000]["cpu_hours"] == pytest.approx(72.0 * 2 / 3600) and not by["ddpm", 2000]["cpu_hours_estimated"]
    # The GPU row: its own GPU time, CPU-hours at the CPU rate of the largest CPU budget (4x the images).
    g = by["ddpm", 8000]
    assert g["gpu_hours"] == pytest.approx(6.0 / 3600) and g["cpu_hours_estimated"]
    assert g["cpu_hours"] == pytest.approx(4 * 72.0 * 2 / 3600)
    assert [x["accuracy_mean"] for x in r["label_curves"]] == [0.4] and r["label_curves"][0]["budget_images"] == 8000
    md = (tmp_path / "merged" / "curves.md").read_text()
    assert "GPU-min" in md and "| ddpm | 8,000 images | 40.0% +- 1.0% |" in md
    assert (tmp_path / "merged" / "curves_compute.png").stat().st_size > 10_000

    with pytest.raises(DiffprobeError, match="pass each piece once"):
        cmp.merge_curves([cpu, cpu], tmp_path / "twice")
    with pytest.raises(DiffprobeError, match="no compare.json"):
        cmp.merge_curves([tmp_path / "merged"], tmp_path / "none")

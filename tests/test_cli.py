"""The CLI end to end: the demo runs every stage, and the same command gives the same results.json."""

import json

import pytest

from diffprobe.cli import main


@pytest.mark.slow
def test_demo_runs_all_stages_and_is_deterministic(tmp_path, capsys):
    args = ["demo", "--steps", "30", "--image-size", "16", "--seed", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "best (chosen on val)" in out and "k-means" in out
    for f in ("results.json", "report.md", "heatmap.png", "confusion.png", "cluster.json", "bundle/bundle.json",
              "split.csv", "ddpm/unet/config.json", "ddpm/samples.png"):
        assert (tmp_path / "a" / f).is_file(), f
    r = json.loads((tmp_path / "a" / "results.json").read_text())
    assert {"grid", "best", "n_classes", "chance_accuracy", "cluster"} <= set(r)
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("a", "b"))
    for d in (a, b):  # the only difference allowed is where the files went
        d.pop("feature_store"), d.pop("bundle")
    assert a == b


def test_stage_commands_chain_through_files(tiny_run, synth_split, tmp_path, capsys):
    assert main(["features", "--model", str(tiny_run), "--data", str(synth_split), "--out", str(tmp_path / "f"),
                 "--timesteps", "10,100", "--blocks", "mid,up0"]) == 0
    (store,) = (tmp_path / "f").glob("features-*")
    assert main(["probe", "--features", str(store), "--out", str(tmp_path / "p"), "--epochs", "10"]) == 0
    assert main(["cluster", "--features", str(store), "--results", str(tmp_path / "p" / "results.json"),
                 "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "best pair (chosen on val)" in out and "NMI" in out
    grid = json.loads((tmp_path / "p" / "results.json").read_text())["grid"]
    assert {(g["block"], g["timestep"]) for g in grid} == {("mid", 10), ("mid", 100), ("up0", 10), ("up0", 100)}


def test_features_crop_overrides_the_models_preprocessing_and_the_bundle_keeps_it(tiny_run, synth_split, tmp_path):
    from diffprobe.probe.bundle import ClassifierBundle

    args = ["features", "--model", str(tiny_run), "--data", str(synth_split), "--timesteps", "10", "--blocks", "mid"]
    assert main([*args, "--out", str(tmp_path / "kept")]) == 0
    assert main([*args, "--out", str(tmp_path / "cropped"), "--crop"]) == 0
    (kept,), (cropped,) = ((tmp_path / d).glob("features-*") for d in ("kept", "cropped"))
    metas = [json.loads((s / "meta.json").read_text()) for s in (kept, cropped)]
    assert "crop" not in metas[0]["preprocess"] and metas[1]["preprocess"]["crop"] is True
    assert kept.name != cropped.name  # other images, another store
    assert main(["probe", "--features", str(cropped), "--out", str(tmp_path / "p"), "--epochs", "5"]) == 0
    assert ClassifierBundle.load(tmp_path / "p" / "bundle").preprocess.crop


def test_user_errors_are_one_line_messages_not_tracebacks(tmp_path, capsys):
    assert main(["probe", "--features", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not a complete feature store" in err and "Traceback" not in err
    assert main(["features", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "error: " in capsys.readouterr().err


def test_pretrain_backbone_option_routes_to_the_backbone_trainer():
    from diffprobe.cli.main import _route_backbone

    assert _route_backbone(["pretrain", "--backbone", "rcdit", "--data", "d"]) == ["rcdit-pretrain", "--data", "d"]
    assert _route_backbone(["pretrain", "--data", "d", "--backbone=dino"]) == ["baseline", "--method", "dino",
                                                                             "--data", "d"]
    assert _route_backbone(["pretrain", "--backbone", "ddpm", "--data", "d"]) == ["pretrain", "--data", "d"]
    assert _route_backbone(["probe", "--features", "f"]) == ["probe", "--features", "f"]


def test_version_is_the_installed_distributions(capsys):
    from importlib.metadata import version

    import diffprobe

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"diffprobe {version('diffprobe')}" == f"diffprobe {diffprobe.__version__}"

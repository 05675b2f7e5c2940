"""``diffprobe study``: every stage from one config, a self-contained report, stage-by-stage resume."""

import json
import re

import pytest

from diffprobe.cli import main
from diffprobe.workflows.study import STAGES, load_config, run_study
from diffprobe.utils import DiffprobeError

TINY = """
name = "t"
data = "{data}"
work = "{work}"
results = "{results}"
image_size = 16
[pretrain]
channels = [16, 32]
steps = 30
batch_size = 32
lr = 1e-3
warmup_steps = 5
checkpoint_every = 0
[features]
timesteps = [10, 100]
[probe]
seeds = [0, 1]
epochs = 15
[fusion]
ks = {ks}
head = "mlp"
metadata = true
refit = true
[shift]
severities = [3]
shifts = ["noise", "margin"]
classifier = "fusion"
[compare]
readout = true
methods = ["ddpm", "supervised"]
settings = ["natural"]
budget_images = 960
ddpm_channels = [16, 32]
resnet_widths = [8, 16, 16, 32]
resnet_depths = [1, 1, 1, 1]
probe_epochs = 15
[rcdit]
steps = 20
batch_size = 32
enc_dim = 32
enc_depth = 2
enc_heads = 2
dit_dim = 32
dit_depth = 2
dit_heads = 2
[zeroshot]
positive = "chain_*"
shots = [1, 0]
episodes = 2
dc_max_images = 10
"""


def _config(tmp_path, data, ks="[2, 3]"):
    path = tmp_path / "study.toml"
    path.write_text(TINY.format(data=data, work=tmp_path / "work", results=tmp_path / "results", ks=ks))
    return path


@pytest.fixture(scope="module")
def study(synth_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    config = _config(tmp, synth_dir)
    return tmp, config, run_study(config)


@pytest.mark.slow  # the study trains every stage's models: the suite's largest cost, kept out of the quick loop
def test_study_runs_every_stage_and_writes_a_self_contained_report(study):
    tmp, _, r = study
    assert list(r["stages"]) == list(STAGES)
    p = r["stages"]["probe"]
    accs = [s["test_accuracy"] for s in p["per_seed"]]
    assert [s["seed"] for s in p["per_seed"]] == [0, 1]
    assert p["test_accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    assert p["test_accuracy"]["mean"] > 2 * p["chance_accuracy"]
    assert r["stages"]["fusion"]["best"]["k"] in (2, 3)
    # The second reading (cut to the organism, as the config reads the frame) and the two heads averaged.
    e = r["stages"]["ensemble"]
    assert e["second_reading"] == "cut to the organism" and e["test_accuracy"] > 2 * p["chance_accuracy"]
    ens = json.loads((tmp / "work" / "ensemble" / "bundle" / "bundle.json").read_text())
    calibrated = json.loads((tmp / "work" / "ensemble" / "train-only" / "bundle.json").read_text())
    assert ens["members"] == ["frame", "crop"] and ens["temperature"] == calibrated["temperature"] != 1.0
    rows = r["stages"]["compare"]["rows"]
    # Every method read the fusion stage's way too (its head, measurements and k choice).
    assert [(x["method"], x["eval"]) for x in rows] == [
        ("ddpm", "linear probe"), ("ddpm", "MLP, top-k pairs + measurements"), ("supervised", "linear probe"),
        ("supervised", "MLP, top-k pairs + measurements"), ("supervised", "end to end")]
    sh = r["stages"]["shift"]
    assert sh["classifier"] == "fusion" and set(sh["accuracy"]) == {"noise", "margin"}
    # The fused head read again on the 48 test images: one borderline image may flip under bf16 (1/48 of accuracy).
    assert sh["clean"] == pytest.approx(r["stages"]["fusion"]["refit"]["test_accuracy"], abs=1 / 48 + 1e-9)
    z = r["stages"]["zeroshot"]
    assert set(z) == {"rcdit", "ddpm", "skipped"} and "dino" in z["skipped"]
    assert z["rcdit"]["diffusion_classifier"]["n_images"] == 10
    assert z["ddpm"]["representation"]["block"] == p["per_seed"][0]["block"]
    # One run, one commit: the code version of every stage is recorded (a git checkout of diffprobe).
    assert len(r["commits"]) == 1 and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", r["commits"][0])
    res = tmp / "results"
    assert json.loads((res / "study.json").read_text())["stages"] == r["stages"]
    page = (res / "study.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and 'src="heatmap.png"' not in page
    md = (res / "study.md").read_text()
    assert r["commits"][0][:12] in md and "± " in md and "## Controlled comparison" in md and "## Two readings" in md and "(reused)" not in md


@pytest.mark.slow
def test_study_resumes_stage_by_stage(study, synth_dir):
    tmp, config, first = study
    again = run_study(config)
    assert all(t["reused"] for t in again["timings"].values())
    assert again["stages"] == first["stages"]
    # Changing the fusion settings re-runs fusion (and nothing upstream or unrelated).
    changed = run_study(_config(tmp, synth_dir, ks="[2]"))
    rerun = {s for s, t in changed["timings"].items() if not t["reused"]}
    # The shift stage tests the fused head and the comparison reads with its settings: both follow, and
    # zero-shot, which reads the comparison's DINO.
    assert rerun == {"fusion", "ensemble", "shift", "compare", "zeroshot"} and changed["stages"]["fusion"]["best"]["k"] == 2
    assert main(["study", str(config), "--redo", "cluster"]) == 0


@pytest.mark.parametrize("extra, message", [
    ("[probe]\nseed = [0]\n", "unknown setting"),
    ("[pretrain]\nsteps = \"many\"\n", r"\[pretrain\].steps: Input should be a valid integer, got 'many'"),
    ("[pretrain]\nsteps = 0\n", r"\[pretrain\].steps: Input should be greater than or equal to 1"),
    ("[probe]\nseeds = []\n", r"\[probe\].seeds: List should have at least 1 item"),
    ("[pretrain]\narch = \"vgg\"\n", r"\[pretrain\].arch: Input should be 'resnet', 'vit' or 'convnet'"),
    ("stages = [\"split\", \"prob\"]\n", r"the top level.stages\[1\]: Input should be 'split'"),
    # Bounds taken with a setting from the stage class that declares it (SettingFrom).
    ("[pretrain]\nbatch_size = 0\n", r"\[pretrain\].batch_size: Input should be greater than 0, got 0"),
    ("[features]\nviews = 3\n", r"\[features\].views: Value error, views must be one of \(1, 2, 4, 8\), got 3"),
    ("[features]\ntimesteps = [10, 1000]\n", r"\[features\].timesteps\[1\]: Input should be less than 1000"),
    ("[rcdit]\nr_dropout = 1.0\n", r"\[rcdit\].r_dropout: Input should be less than 1, got 1.0"),
])
def test_bad_config_names_the_file_and_the_setting(tmp_path, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'data = "d"\nwork = "w"\nresults = "r"\n{extra}')
    with pytest.raises(DiffprobeError, match=message) as e:
        load_config(path)
    assert str(path) in str(e.value)


WRONG = {int: '"x"', float: '"x"', str: "1", bool: "1", list: "3"}  # a TOML value of another type


def _settings():
    """(where, table header or None, the section's model): the top level and every section."""
    from diffprobe.workflows.study import SECTIONS, TOP

    return [("the top level", None, TOP)] + [(f"[{name}]", name, cls) for name, cls in SECTIONS.items()]


def _write(path, header, line):
    """A config with data, work and results set and ``line`` ("key = value") at the top level or in [header]."""
    top = {"data": '"d"', "work": '"w"', "results": '"r"'}
    if header is None and line:
        key, value = (x.strip() for x in line.split("=", 1))
        top[key] = value
    text = "".join(f"{k} = {v}\n" for k, v in top.items())
    path.write_text(text + (f"[{header}]\n{line}\n" if header else ""))
    return path


def _kind(annotation):
    """The TOML type of a field: list for list[...], str for a Literal of strings, else the annotation."""
    import typing

    if typing.get_origin(annotation) is typing.Literal:
        return type(typing.get_args(annotation)[0])
    return typing.get_origin(annotation) or annotation


def test_every_key_is_type_checked(tmp_path):
    """Every key of every section refuses a value of another TOML type, with the file and the key named."""
    checked = 0
    for where, header, cls in _settings():
        for name, f in cls.model_fields.items():
            path = _write(tmp_path / f"{header}-{name}.toml", header, f"{name} = {WRONG[_kind(f.annotation)]}")
            with pytest.raises(DiffprobeError) as e:
                load_config(path)
            assert str(e.value).startswith(f"{path}: {where}.{name}: Input should be"), str(e.value)
            checked += 1
    assert checked > 50


def test_each_setting_is_declared_once():
    """Every key of a study config is either taken from the stage settings class that declares it (its default is
    that field's) or is the study's own choice, declared in the section; the study's own keys never restate a stage
    setting of the same name silently: those are listed here with the reason."""
    import dataclasses

    from diffprobe.config import default_of

    # The study's own values for settings a stage also has: budgets in steps (a config gives the same run on any
    # machine), its checkpoint rhythm, TOML's 0 for "no EMA", the comparison's own timesteps, the shared seed, the
    # supervised CNN's architecture by name (BaselineConfig.arch is the whole architecture), TOML's false for the
    # crop's None (as the model was pretrained) and its "" for zero-shot's None (no binary task); the study's name
    # (an architecture's name is its tag).
    own_on_purpose = {(None, "name"), ("features", "crop"), ("zeroshot", "positive"), ("pretrain", "steps"), ("pretrain", "checkpoint_every"), ("pretrain", "ema_decay"),
                      ("pretrain", "arch"),
                      ("compare", "budget_images"), ("compare", "timesteps"), ("rcdit", "steps"), (None, "seed")}
    classes = {c.__name__: c for c in _all_stage_classes()}
    owners, listed = set(), []
    for where, header, cls in _settings():
        for name, f in cls.model_fields.items():
            defined_in = (f.json_schema_extra or {}).get("defined_in")
            if defined_in:
                owner, field = defined_in.split(".")
                default = default_of(classes[owner], field)
                assert f.default == (list(default) if isinstance(default, tuple) else default), (where, name)
                owners.add(owner)
            else:
                shadowed = [c.__name__ for c in classes.values() if name in {x.name for x in dataclasses.fields(c)}]
                assert not shadowed or (header, name) in own_on_purpose, \
                    f"{where} {name} restates {shadowed}: take it with SettingFrom"
            listed.append(f"{where}.{name}: {defined_in or 'the study'}")
    assert len(owners) == len(classes), sorted(set(classes) - owners)
    assert len(listed) > 70


def _all_stage_classes():
    from diffprobe.config.backbones import ConvNetConfig, RCDiTConfig, UNetConfig
    from diffprobe.config.evaluate import DiffusionClassifierConfig, ShiftConfig, ZeroShotConfig
    from diffprobe.config.features import ExtractConfig, FeatureSpec
    from diffprobe.config.pretrain import BaselineConfig, PretrainConfig, RCDiTPretrainConfig
    from diffprobe.config.probe import FusionConfig, GridProbeConfig, MLPProbeConfig
    from diffprobe.workflows.config import CompareConfig

    return [ConvNetConfig, RCDiTConfig, UNetConfig, DiffusionClassifierConfig, ShiftConfig, ZeroShotConfig, ExtractConfig,
            FeatureSpec, BaselineConfig, PretrainConfig, RCDiTPretrainConfig, FusionConfig, GridProbeConfig,
            MLPProbeConfig, CompareConfig]


def test_unknown_keys_are_refused_naming_the_file_the_key_and_the_known_ones(tmp_path):
    for where, header, cls in _settings():
        path = _write(tmp_path / f"{header}.toml", header, "stepz = 1")
        with pytest.raises(DiffprobeError) as e:
            load_config(path)
        assert str(e.value) == f"{path}: unknown setting(s) ['stepz'] in {where}; known: {sorted(cls.model_fields)}"


def test_the_sections_defaults_are_the_stages_settings():
    """A config that sets nothing gets the stages' own defaults, except where the study chooses its own."""
    from diffprobe.config import default_of
    from diffprobe.config.backbones import RCDiTConfig, UNetConfig
    from diffprobe.config.features import FeatureSpec
    from diffprobe.config.pretrain import PretrainConfig
    from diffprobe.config.probe import FusionConfig, GridProbeConfig

    s = {k: dict(v) for k, v in _sections_of_an_empty_config().items()}
    assert s["pretrain"]["channels"] == list(UNetConfig.channels)
    assert s["pretrain"]["lr"] == PretrainConfig.lr and s["pretrain"]["batch_size"] == PretrainConfig.batch_size
    assert s["features"]["timesteps"] == list(FeatureSpec.timesteps) and s["features"]["pooling"] == "avg"
    assert s["probe"]["epochs"] == GridProbeConfig.epochs == s["compare"]["probe_epochs"]
    assert s["fusion"]["ks"] == list(default_of(FusionConfig, "ks"))
    assert {k: s["rcdit"][k] for k in ("enc_dim", "dit_depth")} == {"enc_dim": RCDiTConfig.enc_dim,
                                                                    "dit_depth": RCDiTConfig.dit_depth}
    # The study's own choices (a budget in steps, sized for the reference study; the ViT DINO).
    assert (s["pretrain"]["steps"], s["pretrain"]["checkpoint_every"], s["compare"]["budget_images"],
            s["compare"]["dino_arch"], s["rcdit"]["steps"]) == (8000, 250, 64000, "vit", 1000)


def _sections_of_an_empty_config():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        return load_config(_write(Path(d) / "empty.toml", None, "")).sections


def test_a_stage_without_its_inputs_is_refused(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('data = "d"\nwork = "w"\nresults = "r"\nstages = ["probe"]\n')
    with pytest.raises(DiffprobeError, match="needs"):
        run_study(path)

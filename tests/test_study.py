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
[shift]
severities = [3]
[compare]
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


def test_study_runs_every_stage_and_writes_a_self_contained_report(study):
    tmp, _, r = study
    assert list(r["stages"]) == list(STAGES)
    p = r["stages"]["probe"]
    accs = [s["test_accuracy"] for s in p["per_seed"]]
    assert [s["seed"] for s in p["per_seed"]] == [0, 1]
    assert p["test_accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
    assert p["test_accuracy"]["mean"] > 2 * p["chance_accuracy"]
    assert r["stages"]["fusion"]["best"]["k"] in (2, 3)
    assert {row["method"] for row in r["stages"]["compare"]["rows"]} == {"ddpm", "supervised"}
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
    assert r["commits"][0][:12] in md and "± " in md and "## Controlled comparison" in md and "(reused)" not in md


def test_study_resumes_stage_by_stage(study, synth_dir):
    tmp, config, first = study
    again = run_study(config)
    assert all(t["reused"] for t in again["timings"].values())
    assert again["stages"] == first["stages"]
    # Changing the fusion settings re-runs fusion (and nothing upstream or unrelated).
    changed = run_study(_config(tmp, synth_dir, ks="[2]"))
    rerun = {s for s, t in changed["timings"].items() if not t["reused"]}
    assert rerun == {"fusion"} and changed["stages"]["fusion"]["best"]["k"] == 2
    assert main(["study", str(config), "--redo", "cluster"]) == 0


@pytest.mark.parametrize("extra, message", [
    ("[probe]\nseed = [0]\n", "unknown setting"),
    ("[pretrain]\nsteps = \"many\"\n", "steps must be an integer"),
    ("stages = [\"split\", \"prob\"]\n", "unknown stage"),
])
def test_bad_config_names_the_file_and_the_setting(tmp_path, extra, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'data = "d"\nwork = "w"\nresults = "r"\n{extra}')
    with pytest.raises(DiffprobeError, match=message) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_a_stage_without_its_inputs_is_refused(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('data = "d"\nwork = "w"\nresults = "r"\nstages = ["probe"]\n')
    with pytest.raises(DiffprobeError, match="needs"):
        run_study(path)

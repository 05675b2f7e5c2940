"""Beyond one machine: `torchrun` (what `accelerate launch` runs) with 2 CPU processes (gloo data parallel)
pretrains to the same weights as 1 process, and extracts the identical feature store."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # several processes each; ~100 s together
import torch
from safetensors.torch import load_file

from diffprobe.utils import read_json

ARGS = ["--image-size", "16", "--channels", "16,32", "--steps", "6", "--batch-size", "8", "--checkpoint-every", "3"]


def _diffprobe(*args, processes=1, cwd=None):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, "-m", "diffprobe.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def runs(synth_split, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    for n in (1, 2):
        _diffprobe("pretrain", "--data", synth_split, "--out", tmp / f"p{n}", *ARGS, processes=n)
    return tmp


def test_two_processes_train_the_same_model_as_one(runs):
    one = load_file(runs / "p1" / "unet" / "diffusion_pytorch_model.safetensors")
    two = load_file(runs / "p2" / "unet" / "diffusion_pytorch_model.safetensors")
    # The global batch is split across the processes and DDP averages their gradients: the same
    # update as one process up to the summation order and bf16 rounding of half batches.
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=0, atol=1e-3)
    s1, s2 = read_json(runs / "p1" / "summary.json"), read_json(runs / "p2" / "summary.json")
    assert (s1["processes"], s2["processes"]) == (1, 2)
    assert s1["images_seen"] == s2["images_seen"] == 48
    assert s2["last_loss"] == pytest.approx(s1["last_loss"], rel=2e-2)  # the loss of the whole global batch


def test_two_processes_extract_the_same_feature_store(runs, synth_split):
    for n in (1, 2):
        _diffprobe("features", "--model", runs / "p1", "--data", synth_split, "--out", runs / f"f{n}",
                   "--timesteps", "1,50", "--batch-size", "16", processes=n)
    (s1,), (s2,) = (list((runs / f"f{n}").glob("features-*")) for n in (1, 2))
    assert s1.name == s2.name
    files = sorted(p.name for p in s1.glob("*.npy"))
    assert files == sorted(p.name for p in s2.glob("*.npy")) and len(files) > 2
    for f in files:  # labels and splits exactly; features within fp32 rounding (2 processes batch other images
        # together, and some CPUs' kernels round by batch: 1 ulp apart held to AVX2 kernels)
        a, b = np.load(s2 / f), np.load(s1 / f)
        if np.issubdtype(a.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)
    assert not list(runs.glob("f2/.*partial"))


def test_two_processes_probe_the_same_grid_as_one(runs, synth_split):
    _diffprobe("features", "--model", runs / "p1", "--data", synth_split, "--out", runs / "fp",
               "--timesteps", "1,50", "--batch-size", "16")
    (store,) = (runs / "fp").glob("features-*")
    for n in (1, 2):
        _diffprobe("probe", "--features", store, "--out", runs / f"probe{n}", "--epochs", "6", processes=n)
    one, two = (read_json(runs / f"probe{n}" / "results.json") for n in (1, 2))
    # Each process probes half of the pairs; the main one gathers them back into pair order.
    assert [(g["block"], g["timestep"]) for g in two["grid"]] == [(g["block"], g["timestep"]) for g in one["grid"]]
    for a, b in zip(one["grid"], two["grid"]):
        assert b["val_accuracy"] == pytest.approx(a["val_accuracy"], abs=0.02)
    assert (runs / "probe2" / "bundle" / "bundle.json").is_file()

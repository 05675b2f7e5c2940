"""SIGKILL a pretraining run between checkpoints and in the middle of writing one: --resume then
continues from the last complete checkpoint and ends exactly where an uninterrupted run ends."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffprobe.pretrain import PretrainConfig, pretrain

KILLER = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np
    import diffprobe.pretrain.checkpoint as ck
    import diffprobe.pretrain.loop as loop
    from diffprobe.pretrain import PretrainConfig, pretrain

    images, out, cfg, mode = np.load(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if mode == "between":
        real_batch = loop.batch_for_step
        loop.batch_for_step = lambda step, *a: die() if step == 13 else real_batch(step, *a)
    else:  # during: killed after the 2nd checkpoint's first file is written, before it is complete
        real_save, calls = ck.save_file, []
        def save_file(tensors, path):
            real_save(tensors, path)
            calls.append(path)
            if len(calls) == 3:
                die()
        ck.save_file = save_file
    pretrain(images, out, PretrainConfig.from_dict(cfg), progress=False, sample=False)
""")


@pytest.fixture(scope="module")
def setup(synth_images, tiny_cfg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    images = synth_images.part("train")[0]
    np.save(tmp / "images.npy", images)
    cfg = PretrainConfig(**{**tiny_cfg.to_dict(), "steps": 24, "checkpoint_every": 8})
    reference = pretrain(images, tmp / "reference", cfg, progress=False, sample=False)
    return tmp, images, cfg, reference


@pytest.mark.parametrize("mode", ["between", "during"])
def test_sigkill_then_resume_equals_uninterrupted(setup, mode):
    tmp, images, cfg, reference = setup
    out = tmp / f"killed_{mode}"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp / "images.npy"), str(out), json.dumps(cfg.to_dict()),
                           mode], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 8  # the last complete checkpoint; the half-written one was never promoted
    pretrain(images, out, cfg, resume=True, progress=False, sample=False)
    ref = load_file(reference / "unet" / "diffusion_pytorch_model.safetensors")
    got = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    ref_log = (reference / "train_log.csv").read_text().splitlines()
    got_log = (out / "train_log.csv").read_text().splitlines()
    # Rows after the resume point carry the same losses as the uninterrupted run.
    assert [r.split(",")[1] for r in got_log if r.startswith("24,")] == [
        r.split(",")[1] for r in ref_log if r.startswith("24,")]


def test_damaged_checkpoint_gives_a_clear_error(setup, tmp_path):
    import shutil

    from diffprobe.utils import DiffprobeError

    _, images, cfg, reference = setup
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    data = (out / "checkpoint" / "model.safetensors").read_bytes()
    (out / "checkpoint" / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(DiffprobeError, match="checkpoint is damaged"):
        pretrain(images, out, cfg, resume=True, progress=False, sample=False)

"""The RC-DiT trainer: loss goes down, run folder is a backbone dir, exact resume, clear errors."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from diffprobe.pretrain.rcdit import pretrain_rcdit
from diffprobe.utils import DiffprobeError, read_json

def test_training_lowers_the_loss(rcdit_run):
    rows = list(csv.DictReader(open(rcdit_run / "train_log.csv")))
    losses = [float(r["loss"]) for r in rows]
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert losses[-1] < 0.8 * losses[0]


def test_run_folder_is_a_backbone_dir(rcdit_run):
    assert read_json(rcdit_run / "backbone.json")["kind"] == "rcdit"
    assert read_json(rcdit_run / "preprocess.json") == {"size": 16, "invert": True, "flatfield": True}
    assert (rcdit_run / "samples.png").stat().st_size > 0
    assert read_json(rcdit_run / "summary.json")["step"] == 60


def test_resume_continues_exactly(synth_images, tmp_path, tiny_pretrain_cfg):
    imgs = synth_images.part("train")[0]
    straight = pretrain_rcdit(imgs, tmp_path / "a", tiny_pretrain_cfg(steps=10), progress=False, sample=False)
    pretrain_rcdit(imgs, tmp_path / "b", tiny_pretrain_cfg(steps=6), progress=False, sample=False)
    resumed = pretrain_rcdit(imgs, tmp_path / "b", tiny_pretrain_cfg(steps=10), resume=True, progress=False,
                             sample=False)
    a, b = load_file(straight / "rcdit.safetensors"), load_file(resumed / "rcdit.safetensors")
    assert all((a[k] == b[k]).all() for k in a)


def test_existing_run_and_mismatched_resume_are_refused(synth_images, tmp_path, tiny_pretrain_cfg):
    imgs = synth_images.part("train")[0]
    pretrain_rcdit(imgs, tmp_path / "r", tiny_pretrain_cfg(steps=2), progress=False, sample=False)
    with pytest.raises(DiffprobeError, match="--resume"):
        pretrain_rcdit(imgs, tmp_path / "r", tiny_pretrain_cfg(steps=4), progress=False, sample=False)
    with pytest.raises(DiffprobeError, match="different architecture"):
        pretrain_rcdit(imgs, tmp_path / "r", tiny_pretrain_cfg(steps=4, r_dropout=0.3), resume=True, progress=False)
    with pytest.raises(DiffprobeError, match="expects 16 px"):
        pretrain_rcdit(synth_images.images[:, :8, :8], tmp_path / "s", tiny_pretrain_cfg(), progress=False)


def test_conditioning_diagnostic_is_logged_at_checkpoints_and_in_the_summary(rcdit_run):
    rows = list(csv.DictReader(open(rcdit_run / "conditioning.csv")))
    assert sorted({int(r["step"]) for r in rows}) == [20, 40, 60]
    assert {r["bucket"] for r in rows} == {"0-250", "250-500", "500-750", "750-1000", "all"}
    summary = read_json(rcdit_run / "summary.json")["conditioning"]
    for v in summary.values():
        assert v["gap"] == pytest.approx(v["shuffled"] - v["own"])
        assert 0 < v["own"] < 2  # an MSE of unit-variance noise predictions


def test_conditioning_gap_is_zero_for_a_denoiser_that_ignores_r(synth_images, tiny_model_cfg):
    from diffprobe.backbones.rcdit import RCDiT
    from diffprobe.pretrain.rcdit import conditioning_gap

    torch.manual_seed(0)
    untrained = RCDiT(tiny_model_cfg)  # adaLN-zero: r reaches nothing before training
    gap = conditioning_gap(untrained, synth_images.images[:32], per_bucket=16)
    assert all(v["gap"] == 0 and v["own"] == v["null"] for v in gap.values())
    with torch.no_grad():  # open every gate: now the image's own r and another's give different losses
        for p in untrained.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert gap != conditioning_gap(untrained, synth_images.images[:32], per_bucket=16)
    assert all(v["gap"] != 0 for v in conditioning_gap(untrained, synth_images.images[:32], per_bucket=16).values())
    narrow = conditioning_gap(untrained, synth_images.images[:32], per_bucket=16, buckets=((200, 250),))
    assert set(narrow) == {"200-250", "all"} and narrow["200-250"] == narrow["all"]


def test_timestep_weighting_and_encoder_view_change_only_what_they_say(synth_images, tiny_pretrain_cfg):
    from diffprobe.pretrain.rcdit import RCDiTTask

    imgs = synth_images.part("train")[0]
    idx = torch.arange(len(imgs))

    def batch(**kw):
        return RCDiTTask(imgs, tiny_pretrain_cfg(**kw), sample=False).batch(None, idx, torch.Generator().manual_seed(3))

    paper, high, view = batch(), batch(t_sampling="high"), batch(encoder_view="augmented")
    # High: density rising with t (mean 2T/3 against T/2); the images and their noise are those of the paper's.
    assert high["t"].float().mean() > 600 > paper["t"].float().mean() and torch.equal(high["x0"], paper["x0"])
    # Augmented: the encoder gets its own flip / quarter turn of the same images; the denoiser's side unchanged.
    assert "x_enc" not in paper and torch.equal(view["x0"], paper["x0"]) and torch.equal(view["t"], paper["t"])
    turned = (view["x_enc"] != view["x0"]).flatten(1).any(1).float().mean()
    assert 0.5 < turned < 1.0
    assert torch.allclose(view["x_enc"].flatten(1).sort(1).values, view["x0"].flatten(1).sort(1).values)
    with pytest.raises(DiffprobeError, match="t_sampling"):
        tiny_pretrain_cfg(t_sampling="low")


def test_v_prediction_trains_on_v_and_reads_back_eps(synth_images, tiny_pretrain_cfg, tiny_model_cfg):
    from dataclasses import replace

    from diffprobe.backbones.rcdit import RCDiT
    from diffprobe.pretrain.rcdit import RCDiTTask

    v_cfg = replace(tiny_model_cfg, prediction="v_prediction")
    task = RCDiTTask(synth_images.part("train")[0], tiny_pretrain_cfg(model=v_cfg), sample=False)
    torch.manual_seed(0)
    model = RCDiT(v_cfg)
    batch = task.batch(model, torch.arange(16), torch.Generator().manual_seed(1))
    a = batch["alpha"].view(-1, 1, 1, 1)
    v = a.sqrt() * batch["eps"] - (1 - a).sqrt() * batch["x0"]
    # A denoiser that outputs the true v has zero loss, and predict_eps turns its output into the true noise.
    model.denoiser.forward = lambda xt, t, r, return_hidden=False: v
    assert task.loss(model, batch).item() < 1e-10
    eps = model.predict_eps(task.noised(batch), batch["t"], torch.zeros(16, v_cfg.enc_dim))
    assert torch.allclose(eps, batch["eps"], atol=1e-4)
    with pytest.raises(DiffprobeError, match="prediction"):
        replace(tiny_model_cfg, prediction="sample")

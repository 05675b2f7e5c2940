"""The baseline trainers (supervised, SimCLR, DINO, MAE) and their backbones."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffprobe.backbones import load_backbone
from diffprobe.backbones.baselines import BaselineBackbone
from diffprobe.data.dataset import ImageArray
from diffprobe.data.preprocess import Preprocess
from diffprobe.evaluate.zeroshot import resolve_representation
from diffprobe.features.extract import FeatureSpec
from diffprobe.features.store import extract_features
from diffprobe.pretrain import baselines as bl
from diffprobe.pretrain import loop
from diffprobe.pretrain.baselines import METHOD_CLASSES, BaselineConfig, seeded_global_rng, train_baseline
from diffprobe.utils import DiffprobeError, read_json


def _fixed_batch_loss(method, x, y) -> float:
    """The method's loss on one fixed batch of views (same random draws for every model compared)."""
    with seeded_global_rng(123):
        batch = method.views(torch.from_numpy(x[:64]), torch.from_numpy(y[:64]))
    method.train()
    with torch.no_grad():
        return method(batch).item()


# steps chosen so that each method has moved its loss clearly in well under a second or two
CASES = {
    "supervised": dict(steps=60),
    "simclr": dict(steps=30, temperature=0.2, arch_widths=(16, 32, 32, 64)),
    "dino": dict(steps=16),
    "dino-vit": dict(steps=16, vit=True),
    "mae": dict(steps=12),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_method_lowers_its_loss_and_records_its_budget(case, arrays, tiny_config, tiny_resnet, tiny_vit,
                                                             tmp_path):
    from dataclasses import replace

    kw = dict(CASES[case])
    method = case.split("-")[0]
    steps = kw.pop("steps")
    arch = tiny_vit if kw.pop("vit", False) else None
    if "arch_widths" in kw:
        arch = replace(tiny_resnet, widths=kw.pop("arch_widths"))
    cfg = tiny_config(method, steps, arch=arch, **kw)
    out = train_baseline(arrays["x"], tmp_path / case, cfg, labels=arrays["y"], n_classes=8, progress=False)

    torch.manual_seed(cfg.seed)
    fresh = METHOD_CLASSES[method](cfg, 8)  # the same initial weights the run started from
    trained = METHOD_CLASSES[method](cfg, 8)
    trained.load_state_dict(load_file(out / "checkpoint" / "model.safetensors"))
    before, after = _fixed_batch_loss(fresh, arrays["x"], arrays["y"]), _fixed_batch_loss(trained, arrays["x"],
                                                                                         arrays["y"])
    assert after < before - 0.02, f"{case}: loss {before:.3f} -> {after:.3f}"

    rows = list(csv.DictReader(open(out / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, steps + 1))
    summary = read_json(out / "summary.json")
    assert summary["images_seen"] == steps * 32 == cfg.budget_images
    assert summary["params"] == sum(p.numel() for p in fresh.export().parameters()) - (
        8 * 32 + 8 if method == "supervised" else 0)  # the classifier head is not counted
    assert summary["elapsed_s"] > 0 and summary["images_per_s"] > 0
    assert load_backbone(out).meta["method"] == method


def test_features_have_the_documented_shapes(arrays, tiny_config, tiny_vit, tmp_path):
    res = train_baseline(arrays["x"], tmp_path / "r", tiny_config("simclr", 2), progress=False)
    vit = train_baseline(arrays["x"], tmp_path / "v", tiny_config("mae", 2), progress=False)
    x = arrays["x"][:5]

    f = load_backbone(res).features_batch(x, FeatureSpec(timesteps=(0,)))
    assert {k: v.shape for k, v in f.items()} == {("layer1", 0): (5, 8), ("layer2", 0): (5, 16),
                                                  ("layer3", 0): (5, 16), ("layer4", 0): (5, 32)}
    g = load_backbone(res).features_batch(x, FeatureSpec(timesteps=(0,), pooling="grid2", blocks=("layer2",)))
    assert list(g) == [("layer2", 0)] and g[("layer2", 0)].shape == (5, 64)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in f.values())

    v = load_backbone(vit).features_batch(x, FeatureSpec(timesteps=(0,)))
    assert {k: a.shape for k, a in v.items()} == {("block0", 0): (5, 32), ("block1", 0): (5, 32), ("cls", 0): (5, 32)}
    # Zero-shot use reads one representation by default: the CLS token, a ResNet's last stage.
    assert resolve_representation(load_backbone(vit), None, None) == ("cls", 0)
    assert resolve_representation(load_backbone(res), None, None) == ("layer4", 0)

    # The same features whichever batch an image comes in (eval mode: no batch statistics).
    one = load_backbone(res).features_batch(x[2:3], FeatureSpec(timesteps=(0,)))
    np.testing.assert_allclose(one[("layer4", 0)][0], f[("layer4", 0)][2], rtol=2e-2, atol=2e-2)

    with pytest.raises(DiffprobeError, match="--timesteps 0"):
        load_backbone(res).features_batch(x, FeatureSpec(timesteps=(0, 10)))

    # Through the ordinary feature store, unchanged.
    images = ImageArray(arrays["x"], arrays["y"], arrays["classes"], np.array(["train"] * len(arrays["x"])),
                        [f"{i}.png" for i in range(len(arrays["x"]))], Preprocess(size=16))
    store = extract_features(vit, images, FeatureSpec(timesteps=(0,)), tmp_path / "features", progress=False)
    assert store.pairs == [("block0", 0), ("block1", 0), ("cls", 0)]
    assert store.get("cls", 0).shape == (len(arrays["x"]), 32)


def test_supervised_beats_chance_on_held_out_images(arrays, tiny_config, tmp_path):
    cfg = tiny_config("supervised", 120, lr=5e-3)
    out = train_baseline(arrays["x"], tmp_path / "sup", cfg, labels=arrays["y"], n_classes=8, progress=False)
    logits = BaselineBackbone.load(out).classify(arrays["x_test"])
    assert logits.shape == (len(arrays["x_test"]), 8)
    acc = (logits.argmax(1) == arrays["y_test"]).mean()
    assert acc > 0.3, f"held-out accuracy {acc:.2f} (chance 0.125)"


def test_resume_continues_exactly(arrays, tiny_config, tmp_path, monkeypatch):
    """DINO has the most state (teacher, loss centre, global-generator views): an interrupted run resumed
    from its step-4 checkpoint ends with the weights of an uninterrupted one."""
    cfg = tiny_config("dino", 8, checkpoint_every=4)
    full = train_baseline(arrays["x"], tmp_path / "full", cfg, progress=False)

    real_save = loop.save_checkpoint

    def save_then_crash(path, **kw):
        real_save(path, **kw)
        if kw["state"]["step"] == 4:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(loop, "save_checkpoint", save_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_baseline(arrays["x"], tmp_path / "cut", cfg, progress=False)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    with pytest.raises(DiffprobeError, match="--resume"):
        train_baseline(arrays["x"], tmp_path / "cut", cfg, progress=False)
    cut = train_baseline(arrays["x"], tmp_path / "cut", cfg, resume=True, progress=False)

    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert read_json(cut / "summary.json")["images_seen"] == 8 * 32

    other = tiny_config("dino", 8, checkpoint_every=4, lr=1e-2)
    with pytest.raises(DiffprobeError, match="lr"):
        train_baseline(arrays["x"], tmp_path / "cut", other, resume=True, progress=False)


def test_nan_loss_stops_with_a_clear_error(arrays, tiny_config, tmp_path, monkeypatch):
    monkeypatch.setattr(bl.MAE, "forward", lambda self, batch: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(DiffprobeError, match="Lower --lr"):
        train_baseline(arrays["x"], tmp_path / "nan", tiny_config("mae", 3), progress=False)


def test_bad_settings_and_inputs_are_reported(arrays, tiny_config, tiny_resnet, tmp_path):
    with pytest.raises(DiffprobeError, match="needs a label"):
        train_baseline(arrays["x"], tmp_path / "a", tiny_config("supervised", 2), progress=False)
    with pytest.raises(DiffprobeError, match="ViT"):
        BaselineConfig(method="mae", arch=tiny_resnet)
    with pytest.raises(DiffprobeError, match="BaselineConfig.method: Input should be 'supervised', 'simclr'"):
        BaselineConfig(method="byol")
    with pytest.raises(DiffprobeError, match="--image-size 16"):
        train_baseline(np.zeros((64, 32, 32), np.uint8), tmp_path / "b", tiny_config("simclr", 2), progress=False)
    with pytest.raises(DiffprobeError, match="batch"):
        train_baseline(arrays["x"][:10], tmp_path / "c", tiny_config("simclr", 2), progress=False)
    cfg = tiny_config("simclr", 2)
    assert BaselineConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(DiffprobeError, match="unknown baseline settings"):
        BaselineConfig.from_dict({**cfg.to_dict(), "epochs": 3})

"""The supervised route's recipe (label smoothing, scale jitter, rotation, EMA weights) and its place in a study config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprobe.backbones.baselines import BaselineBackbone
from diffprobe.pretrain.baselines import BaselineConfig, train_baseline, zoom_batch
from diffprobe.utils import DiffprobeError, read_json


def test_zoom_keeps_the_shape_and_scales_the_object():
    x = -torch.ones(3, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a 4 px object on background -1
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(zoom_batch(x, 0.0, gen), x, atol=1e-6)
    out = zoom_batch(x, 0.5, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    areas = (out > 0).flatten(1).sum(1)
    assert len(set(areas.tolist())) > 1, "each image gets its own zoom"
    assert (out.amin() >= -1 - 1e-6) and (out[:, :, 0, 0] == -1).all(), "the border fills with background"


def test_rotation_turns_objects_and_leaves_the_zoom_stream_alone():
    x = -torch.ones(4, 1, 32, 32)
    x[:, :, 14:18, 4:28] = 1.0  # a horizontal bar through the centre
    turned = zoom_batch(x, 0.0, torch.Generator().manual_seed(0), rotate=90)
    rows_lit = (turned > 0).any(3).sum(2).squeeze(1)  # how many rows each turned bar crosses
    assert rows_lit.max() > 8 and len(set(rows_lit.tolist())) > 1, "each bar turned by its own angle, up to 90 degrees"
    assert (turned > 0).flatten(1).sum(1).float().sub(96).abs().max() < 40, "the object keeps about its area"
    # Without rotation nothing extra is drawn: zoom-only runs give the numbers they gave before ``rotate`` existed.
    zoom = zoom_batch(x, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(zoom, zoom_batch(x, 0.3, torch.Generator().manual_seed(1), rotate=0))


def test_the_recipe_trains_beats_chance_and_is_recorded(arrays, tiny_config, tmp_path):
    cfg = tiny_config("supervised", 120, lr=5e-3, label_smoothing=0.1, scale_jitter=0.1, ema_decay=0.9)
    out = train_baseline(arrays["x"], tmp_path / "sup", cfg, labels=arrays["y"], n_classes=8, progress=False)
    saved = read_json(out / "config.json")
    assert (saved["label_smoothing"], saved["scale_jitter"], saved["ema_decay"]) == (0.1, 0.1, 0.9)
    logits = BaselineBackbone.load(out).classify(arrays["x_test"])
    acc = (logits.argmax(1) == arrays["y_test"]).mean()
    assert acc > 0.3, f"held-out accuracy {acc:.2f} (chance 0.125)"
    # The exported weights are the EMA's, not the last step's: a run without EMA ends elsewhere.
    plain = train_baseline(arrays["x"], tmp_path / "plain", tiny_config("supervised", 120, lr=5e-3,
                           label_smoothing=0.1, scale_jitter=0.1), labels=arrays["y"], n_classes=8, progress=False)
    a, b = (BaselineBackbone.load(p).model.state_dict()["fc.weight"] for p in (out, plain))
    assert not torch.allclose(a, b)


def test_a_student_learns_its_teachers_probabilities(arrays, tiny_config, tmp_path):
    n, k = len(arrays["y"]), 8
    # A teacher that swaps classes 0 and 1: a student that follows it (distill = 1) learns the swap.
    swapped = np.where(arrays["y"] == 0, 1, np.where(arrays["y"] == 1, 0, arrays["y"]))
    teacher = np.eye(k, dtype=np.float32)[swapped]
    cfg = tiny_config("supervised", 120, lr=5e-3, label_smoothing=0.1, distill=1.0)
    out = train_baseline(arrays["x"], tmp_path / "student", cfg, labels=arrays["y"], n_classes=k, progress=False,
                         teacher_probs=teacher)
    pred = BaselineBackbone.load(out).classify(arrays["x_test"]).argmax(1)
    was_zero = arrays["y_test"] == 0
    assert (pred[was_zero] == 1).mean() > 0.5, "the student follows its teacher, not the labels"
    with pytest.raises(DiffprobeError, match="needs the teacher's probabilities"):
        train_baseline(arrays["x"], tmp_path / "s2", cfg, labels=arrays["y"], n_classes=k, progress=False,
                       teacher_probs=teacher[: n // 2])
    with pytest.raises(DiffprobeError, match="distill is 0"):
        train_baseline(arrays["x"], tmp_path / "s3", tiny_config("supervised", 120), labels=arrays["y"], n_classes=k,
                       progress=False, teacher_probs=teacher)


def test_the_plain_cnn_trains_and_reads_every_block(arrays, tiny_config, tmp_path):
    from diffprobe.backbones.baselines import ConvNetConfig
    from diffprobe.features.extract import FeatureSpec

    arch = ConvNetConfig(image_size=16, widths=(8, 16, 16, 32), convs=1)
    cfg = tiny_config("supervised", 120, arch=arch, lr=5e-3, label_smoothing=0.1)
    backbone = BaselineBackbone.load(train_baseline(arrays["x"], tmp_path / "cnn", cfg, labels=arrays["y"],
                                                    n_classes=8, progress=False))
    assert backbone.block_names() == ["layer1", "layer2", "layer3", "layer4"]
    assert backbone.representation == ("layer4", 0)
    acc = (backbone.classify(arrays["x_test"]).argmax(1) == arrays["y_test"]).mean()
    assert acc > 0.3, f"held-out accuracy {acc:.2f} (chance 0.125)"
    feats = backbone.features_batch(arrays["x_test"][:3], FeatureSpec(timesteps=(0,), blocks=("layer2", "layer4"),
                                                                       pooling="avgmax"))
    assert feats[("layer2", 0)].shape == (3, 32) and feats[("layer4", 0)].shape == (3, 64)


def test_a_plain_cnn_that_does_not_fit_the_image_is_refused():
    from diffprobe.backbones.baselines import ConvNetConfig

    with pytest.raises(DiffprobeError, match="does not fit 16 px"):
        ConvNetConfig(image_size=16, stem_stride=2)  # 5 blocks: 16 / 2 / 16 < 1 px
    assert ConvNetConfig(image_size=64, stem_stride=2).block_names()[-1] == "layer5"


@pytest.mark.parametrize("setting, value", [("label_smoothing", 1.0), ("scale_jitter", -0.1), ("rotate", 200.0), ("ema_decay", 1.5)])
def test_bad_recipe_settings_are_refused(setting, value):
    with pytest.raises(DiffprobeError, match=setting):
        BaselineConfig(method="supervised", **{setting: value})


def test_a_study_can_train_the_cnn_route(synth_dir, tmp_path):
    from diffprobe.probe.bundle import ClassifierBundle
    from diffprobe.workflows.study import load_config, run_study

    config = tmp_path / "cnn.toml"
    config.write_text(f"""name = "cnn"
data = "{synth_dir}"
work = "{tmp_path / 'work'}"
results = "{tmp_path / 'results'}"
image_size = 16
stages = ["split", "pretrain", "features", "probe"]
[pretrain]
backbone = "supervised"
steps = 8
batch_size = 32
lr = 3e-3
label_smoothing = 0.1
ema_decay = 0.9
[features]
timesteps = [0]
blocks = ["layer3", "layer4"]
[probe]
seeds = [0]
epochs = 5
""")
    run_study(config)
    run = tmp_path / "work" / "cnn"
    assert read_json(run / "backbone.json")["method"] == "supervised"
    assert read_json(run / "config.json")["budget_images"] == 8 * 32
    bundle = ClassifierBundle.load(tmp_path / "work" / "probe-seed0" / "bundle")
    assert bundle.pairs[0][0] in ("layer3", "layer4") and bundle.pairs[0][1] == 0
    probs = bundle.predict_proba(np.zeros((2, 20, 20), np.uint8))
    assert probs.shape == (2, len(bundle.classes)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace('backbone = "supervised"', 'backbone = "cnn"'))
    with pytest.raises(DiffprobeError, match=r"\[pretrain\].backbone: Input should be .ddpm. or .supervised."):
        load_config(bad)

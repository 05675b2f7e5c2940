"""The richer readout: object metadata, views, a truncated forward, the MLP head and format-2 bundles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from diffprobe.backbones.base import load_backbone
from diffprobe.backbones.ddpm_unet import unet_features
from diffprobe.data.measurements import (METADATA_NAMES, SHAPE_NAMES, SIZE_NAMES, object_metadata, rescale_sizes,
                                     select_metadata)
from diffprobe.data.preprocess import Preprocess
from diffprobe.features.extract import FeatureSpec, dihedral, view_features
from diffprobe.probe import GridProbe
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.mlp import MLPProbe
from diffprobe.probe.training import fit_head
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.fusion import fuse_pairs


def test_metadata_measures_the_object_as_imaged():
    img = np.ones((40, 80), np.float32)  # white field, a dark 10 x 30 object
    img[15:25, 20:50] = 0.2
    m = dict(zip(METADATA_NAMES, object_metadata(img, Preprocess(size=16))))
    assert m["log_height"] == pytest.approx(np.log(40)) and m["log_width"] == pytest.approx(np.log(80))
    assert m["log_object_area"] == pytest.approx(np.log1p(300), rel=1e-4)
    assert m["log_object_height"] == pytest.approx(np.log1p(10)) and m["log_object_width"] == pytest.approx(np.log1p(30))
    assert m["fill"] == pytest.approx(300 / 3200) and m["mean_contrast"] == pytest.approx(0.8, abs=0.01)
    # twice the size, same shape: only the size measurements move
    big = np.kron(img, np.ones((2, 2), np.float32))
    m2 = dict(zip(METADATA_NAMES, object_metadata(big, Preprocess(size=16))))
    assert m2["log_object_area"] - m["log_object_area"] == pytest.approx(np.log(4), abs=0.01)
    assert m2["fill"] == pytest.approx(m["fill"]) and m2["log_aspect"] == pytest.approx(m["log_aspect"])


def test_shape_measurements_do_not_depend_on_the_pixel_scale():
    yy, xx = np.indices((60, 90))
    img = np.ones((60, 90), np.float32)
    img[((yy - 30) / 12) ** 2 + ((xx - 45) / 30) ** 2 <= 1] = 0.3  # a dark ellipse, axes 30 and 12
    img[28:33, 60:66] = 0.1  # a darker spot off-centre
    m = dict(zip(METADATA_NAMES, object_metadata(img, Preprocess(size=16))))
    assert m["axis_ratio"] == pytest.approx(12 / 30, abs=0.03) and m["solidity"] > 0.95
    assert m["eccentricity"] == pytest.approx(np.sqrt(1 - (12 / 30) ** 2), abs=0.02)
    assert m["extent"] == pytest.approx(np.pi * 30 * 12 / (61 * 25), abs=0.02) and m["euler_number"] == 1
    assert sum(m[f"ring_{r}"] for r in ("inner", "middle", "outer")) == pytest.approx(1.0)
    ring = img.copy()  # the same ellipse with a hole: one more hole, Euler number 0, less solid
    ring[((yy - 30) / 6) ** 2 + ((xx - 45) / 15) ** 2 <= 1] = 1.0
    r = dict(zip(METADATA_NAMES, object_metadata(ring, Preprocess(size=16))))
    assert r["euler_number"] == 0 and r["solidity"] < m["solidity"] - 0.1
    big = dict(zip(METADATA_NAMES, object_metadata(np.kron(img, np.ones((3, 3), np.float32)), Preprocess(size=16))))
    for name in SHAPE_NAMES:  # three times the pixels: only the two lengths move, by log(3)
        moved = np.log(3) if name in ("log_major_axis", "log_perimeter") else 0.0
        # a traced perimeter grows with the staircase of an upscaled outline: looser there
        tolerance = 0.25 if name in ("log_perimeter", "compactness") else 0.02
        assert big[name] - m[name] == pytest.approx(moved, abs=tolerance), name
    blank = object_metadata(np.ones((20, 20), np.float32), Preprocess(size=16))
    assert blank.shape == (len(METADATA_NAMES),) and not blank[len(SIZE_NAMES):].any()


def test_a_bundle_reads_its_own_measurement_columns():
    meta = np.arange(3 * len(METADATA_NAMES), dtype=np.float32).reshape(3, -1)
    np.testing.assert_array_equal(select_metadata(meta, SIZE_NAMES), meta[:, : len(SIZE_NAMES)])
    np.testing.assert_array_equal(select_metadata(meta[:, :2], SIZE_NAMES[:2]), meta[:, :2])  # its columns already
    picked = select_metadata(meta, ("hu1", "log_width"))
    np.testing.assert_array_equal(picked, meta[:, [METADATA_NAMES.index("hu1"), 1]])
    np.testing.assert_allclose(rescale_sizes(picked, 2.0, ("hu1", "log_width")) - picked, [[0, np.log(2)]] * 3,
                               atol=1e-4)
    with pytest.raises(ValueError, match="newer diffprobe"):
        select_metadata(meta, ("log_width", "tentacle_count"))
    with pytest.raises(ValueError, match=r"\(N, 33\)"):
        select_metadata(meta[:, :5], SIZE_NAMES)


def test_images_and_stores_carry_metadata(synth_images, tiny_store):
    assert synth_images.meta.shape == (len(synth_images), len(METADATA_NAMES))
    assert np.isfinite(synth_images.meta).all()
    np.testing.assert_array_equal(tiny_store.metadata, synth_images.meta)


def test_views_are_the_eight_symmetries_and_features_average_them(tiny_run, synth_images):
    x = synth_images.images[:6]
    views = [dihedral(x, v) for v in range(8)]
    assert len({v.tobytes() for v in views}) == 8
    backbone = load_backbone(tiny_run)
    one = FeatureSpec(timesteps=(10,), blocks=("mid",), precision="fp32")
    four = view_features(backbone, x, FeatureSpec(timesteps=(10,), blocks=("mid",), views=4, precision="fp32"))
    mean = np.mean([backbone.features_batch(views[v], one)[("mid", 10)] for v in range(4)], axis=0)
    np.testing.assert_allclose(four[("mid", 10)], mean, rtol=1e-5, atol=1e-6)
    with pytest.raises(DiffprobeError, match="views must be one of"):
        FeatureSpec(views=3)


def test_forward_stops_at_the_deepest_block_read_with_identical_features(tiny_run, synth_images):
    unet = load_backbone(tiny_run).model
    x = synth_images.images[:4]
    full = unet_features(unet, x, FeatureSpec(timesteps=(5,), precision="fp32"))
    calls = []
    handle = unet.conv_out.register_forward_hook(lambda *a: calls.append(1))
    try:
        early = unet_features(unet, x, FeatureSpec(timesteps=(5,), blocks=("down1", "mid"), precision="fp32"))
    finally:
        handle.remove()
    assert not calls  # the decoder and the output convolution never ran
    for key, v in early.items():
        np.testing.assert_array_equal(v, full[key])


def test_mlp_head_learns_what_a_linear_probe_cannot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2400, 10)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(int)  # XOR of two signs: no linear separation
    tr, va, te = slice(0, 1600), slice(1600, 2000), slice(2000, None)
    lin = GridProbe(epochs=20).fit([x[tr]], y[tr], [x[va]], y[va], 2)[0]
    head = MLPProbe(hidden=(64,), dropout=(0.1,), epochs=60, lr=3e-3, input_dropout=0.0).fit(x[tr], y[tr], x[va], y[va])
    assert (lin.logits(x[te]).argmax(1) == y[te]).mean() < 0.65
    assert (head.logits(x[te]).argmax(1) == y[te]).mean() > 0.85


def test_an_ensemble_of_mlp_heads_is_one_head_averaging_their_logits():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(900, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(int)
    probe = MLPProbe(hidden=(16,), dropout=(0.0,), epochs=5, lr=3e-3, input_dropout=0.0, ensemble=3)
    head = probe.fit(x[:600], y[:600], x[600:], y[600:])
    members = [MLPProbe(hidden=(16,), dropout=(0.0,), epochs=5, lr=3e-3, input_dropout=0.0, seed=s)
               .fit(x[:600], y[:600], x[600:], y[600:]) for s in range(3)]
    assert head.w1.shape == (6, 48) and head.config["ensemble"] == 3
    np.testing.assert_allclose(head.logits(x[600:]), np.mean([m.logits(x[600:]) for m in members], 0),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(DiffprobeError, match="MLPProbeConfig.ensemble: Input should be greater than 0, got 0"):
        MLPProbe(ensemble=0)


def test_refit_follows_the_chosen_schedule_on_more_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1200, 6)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    probe = MLPProbe(hidden=(32,), dropout=(0.1,), epochs=30, lr=1e-2, input_dropout=0.0)
    head = probe.fit(x[:600], y[:600], x[600:900], y[600:900])
    # Refit on the same data is the same run stopped at the same epoch: identical weights.
    again = probe.refit(x[:600], y[:600], head)
    np.testing.assert_allclose(again.w1, head.w1, atol=1e-6)
    assert again.config["epoch"] == head.config["epoch"] and again.config["refit_images"] == 600
    more = probe.refit(x[:900], y[:900], head)
    assert more.config["refit_images"] == 900 and not np.allclose(more.w1, head.w1)
    assert (more.logits(x[900:]).argmax(1) == y[900:]).mean() > 0.8
    with pytest.raises(DiffprobeError, match="outside"):
        MLPProbe(epochs=3).refit(x, y, dataclasses.replace(head, config={**head.config, "epoch": 5}))
    with pytest.raises(DiffprobeError, match="stop epoch"):  # the shared trainer: no val, no epoch to stop at
        fit_head(lambda: torch.nn.Linear(6, 2), (torch.zeros(4, 6),), torch.zeros(4, dtype=torch.long), None, None,
                 epochs=3, lr=1e-3, weight_decay=0.0, batch_size=2, seed=0, precision="fp32")


def test_tail_columns_are_weighted_after_standardisation_and_refit_alike():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 5)).astype(np.float32) * [1, 2, 3, 4, 5]
    y = (x[:, 4] > 0).astype(int)
    probe = MLPProbe(hidden=(16,), dropout=(0.1,), epochs=20, lr=1e-2, input_dropout=0.0)
    plain = probe.fit(x[:400], y[:400], x[400:], y[400:])
    weighted = probe.fit(x[:400], y[:400], x[400:], y[400:], tail=(2, 4.0))
    np.testing.assert_allclose(weighted.std[:3], plain.std[:3])
    np.testing.assert_allclose(weighted.std[3:], plain.std[3:] / 4.0, rtol=1e-6)  # z of the last 2 columns x4
    assert weighted.config["tail"] == [2, 4.0] and "tail" not in plain.config
    again = probe.refit(x[:400], y[:400], weighted)
    np.testing.assert_allclose(again.std, weighted.std, rtol=1e-6)
    np.testing.assert_allclose(again.w1, weighted.w1, atol=1e-6)  # the same run: same weighting, same weights
    for bad in ((6, 2.0), (1, 0.0)):
        with pytest.raises(DiffprobeError, match="tail must be"):
            probe.fit(x[:400], y[:400], x[400:], y[400:], tail=bad)


@pytest.fixture(scope="module")
def mlp_bundle(tiny_store, tiny_probe, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuse-mlp")
    r = fuse_pairs(tiny_store, tiny_probe[1], out, ks=(1, 2), head="mlp", metadata=True, metadata_weight=2.0,
                   mlp=MLPProbe(hidden=(32,), epochs=30, lr=3e-3))
    return r, ClassifierBundle.load(r["bundle"], precision="fp32")


def test_fused_mlp_bundle_round_trips(mlp_bundle, tiny_store):
    r, bundle = mlp_bundle
    assert bundle.meta["format"] == 2 and bundle.meta["head"] == "mlp" and bundle.uses_metadata
    assert r["metadata"] == bundle.metadata_names == list(METADATA_NAMES) and r["metadata_weight"] == 2.0
    assert bundle.meta["head_config"]["tail"] == [len(METADATA_NAMES), 2.0]
    assert bundle.pairs == [(p["block"], p["timestep"]) for p in r["best"]["pairs"]]
    m = tiny_store.splits == "test"
    x = np.concatenate([np.asarray(tiny_store.get(b, t))[m] for b, t in bundle.pairs] + [tiny_store.metadata[m]], 1)
    test_acc = (bundle.head.logits(x).argmax(1) == tiny_store.labels[m]).mean()
    assert test_acc == pytest.approx(r["best"]["test_accuracy"])
    assert r["best"]["test_accuracy"] > 2 / len(tiny_store.classes)  # well above chance
    assert np.isfinite(r["best"]["test_log_loss"])


def test_bundle_predicts_paths_pil_and_arrays_alike(mlp_bundle, synth_split):
    from diffprobe.data.manifest import Manifest
    from diffprobe.data.io import read_image

    _, bundle = mlp_bundle
    m = Manifest.load(synth_split)
    files = [m.full_path(i) for i in range(5)]
    by_path = bundle.predict_proba(files)
    floats = [read_image(f) for f in files]
    uint8 = [np.round(a * 255).astype(np.uint8) for a in floats]
    pil = [Image.fromarray(a) for a in uint8]
    assert by_path.shape == (5, len(bundle.classes))
    np.testing.assert_allclose(bundle.predict_proba(floats), by_path, atol=1e-3)
    np.testing.assert_allclose(bundle.predict_proba(uint8), by_path, atol=1e-3)
    np.testing.assert_allclose(bundle.predict_proba(pil), by_path, atol=1e-3)
    assert bundle.predict(files[0]) == [bundle.classes[int(by_path[0].argmax())]]
    with pytest.raises(DiffprobeError, match=r"values in \[0, 1\]"):
        bundle.predict_proba([floats[0] * 255])
    with pytest.raises(DiffprobeError, match="metadata"):
        bundle.logits(bundle.prepare(files)[0])  # preprocessed images without their metadata
    with pytest.raises(DiffprobeError, match="expected a file path"):
        bundle.predict_proba([{"not": "an image"}])


def test_pixel_scale_is_estimated_from_unlabelled_images_of_another_scale(mlp_bundle, synth_split, tmp_path):
    from diffprobe.data.io import read_image
    from diffprobe.data.manifest import Manifest
    from diffprobe.workflows.predict import predict_files

    _, bundle = mlp_bundle
    medians = np.asarray(bundle.meta["metadata_medians"])
    assert medians.shape == (len(METADATA_NAMES),) == (len(bundle.metadata_names),)
    m = Manifest.load(synth_split)
    # The same organisms through optics with 2x the pixels per unit length: every size doubles.
    for i in range(40):
        img = np.round(read_image(m.full_path(i)) * 255).astype(np.uint8)
        Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.Resampling.BILINEAR).save(
            tmp_path / f"big{i}.png")
    big = [tmp_path / f"big{i}.png" for i in range(40)]
    _, meta, _, _ = bundle.load_paths(big)
    scale = bundle.size_scale(meta, "auto")
    assert scale == pytest.approx(0.5, rel=0.15)
    _, small_meta, _, _ = bundle.load_paths([m.full_path(i) for i in range(40)])
    lengths = [METADATA_NAMES.index(n) for n in ("log_height", "log_width")]
    np.testing.assert_allclose(rescale_sizes(meta, 0.5)[:, lengths], small_meta[:, lengths], atol=0.05)
    r = predict_files(bundle, [str(p) for p in big], tmp_path / "p.csv", progress=False, size_scale="auto")
    assert r["size_scale"] == pytest.approx(scale)
    assert bundle.size_scale(meta, None) == 1.0 and bundle.size_scale(meta, 2) == 2.0
    with pytest.raises(DiffprobeError, match="auto' or a positive number"):
        bundle.size_scale(meta, -1)
    old = dataclasses.replace(bundle, meta={k: v for k, v in bundle.meta.items() if k != "metadata_medians"})
    with pytest.raises(DiffprobeError, match="metadata_medians"):
        old.size_scale(meta, "auto")


def test_stores_and_bundles_from_before_the_shape_measurements_read_the_sizes_alone(tiny_store, tiny_probe,
                                                                                     synth_split, tmp_path):
    import json
    import shutil

    from diffprobe.data.manifest import Manifest
    from diffprobe.features.store import FeatureStore

    old = tmp_path / tiny_store.path.name  # as such a store was written: sizes only, no names in meta.json
    shutil.copytree(tiny_store.path, old)
    np.save(old / "metadata.npy", tiny_store.metadata[:, : len(SIZE_NAMES)])
    meta = json.loads((old / "meta.json").read_text())
    del meta["metadata"]
    (old / "meta.json").write_text(json.dumps(meta))
    store = FeatureStore(old)
    assert store.metadata_names == list(SIZE_NAMES)
    r = fuse_pairs(store, tiny_probe[1], tmp_path / "fuse", ks=(1,), head="mlp", metadata=True,
                   mlp=MLPProbe(hidden=(16,), epochs=3))
    bundle = ClassifierBundle.load(r["bundle"], precision="fp32")
    assert bundle.metadata_names == list(SIZE_NAMES) and len(bundle.meta["metadata_medians"]) == len(SIZE_NAMES)
    m = Manifest.load(synth_split)
    images, measured = bundle.prepare([m.full_path(i) for i in range(4)])
    assert measured.shape[1] == len(METADATA_NAMES)  # measured in full, read in the bundle's columns
    np.testing.assert_allclose(bundle.logits(images, measured), bundle.logits(images, measured[:, : len(SIZE_NAMES)]))
    assert bundle.size_scale(measured, "auto") > 0

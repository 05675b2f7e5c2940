import numpy as np
import pytest
import torch

from diffprobe.backbones import DDPMBackbone, load_backbone
from diffprobe.features import FeatureSpec, FeatureStore, extract_features
from diffprobe.features.extract import dihedral, pool, undo_dihedral_grid
from diffprobe.utils import DiffprobeError


def test_feature_shapes_per_block(tiny_store, synth_images):
    assert tiny_store.blocks == ["down0", "down1", "mid", "up0", "up1"]
    assert tiny_store.dims == {"down0": 16, "down1": 32, "mid": 32, "up0": 32, "up1": 16}
    assert len(tiny_store.pairs) == 5 * 3
    for b, t in tiny_store.pairs:
        f = tiny_store.get(b, t)
        assert f.shape == (len(synth_images), tiny_store.dims[b]) and np.isfinite(f).all()
    np.testing.assert_array_equal(tiny_store.labels, synth_images.labels)


def test_one_forward_pass_per_timestep_yields_every_block(tiny_run, synth_images):
    bb = load_backbone(tiny_run)
    calls = []
    bb.model.register_forward_pre_hook(lambda *a: calls.append(1))  # the forward stops after the last block
    spec = FeatureSpec(timesteps=(1, 10, 100, 400))
    out = bb.features_batch(synth_images.images[:10], spec)
    assert len(calls) == 4  # not 4 x 5 blocks
    assert set(out) == {(b, t) for b in bb.block_names() for t in spec.timesteps}
    calls.clear()
    bb.features_batch(synth_images.images[:10], FeatureSpec(timesteps=(1, 10), n_noise=3))
    assert len(calls) == 6


def test_features_are_reproducible_and_per_image(tiny_run, synth_images):
    bb = load_backbone(tiny_run)
    spec = FeatureSpec(timesteps=(50,), blocks=("mid",))
    imgs = synth_images.images[:6]
    a = bb.features_batch(imgs, spec)[("mid", 50)]
    b = bb.features_batch(imgs[::-1].copy(), spec)[("mid", 50)][::-1]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # an image's noise does not depend on its batch
    c = bb.features_batch(imgs, FeatureSpec(timesteps=(50,), blocks=("mid",), seed=1))[("mid", 50)]
    assert not np.allclose(a, c)


def test_a_pair_does_not_depend_on_the_other_timesteps_asked_for(tiny_run, synth_images):
    bb = load_backbone(tiny_run)
    imgs = synth_images.images[:5]
    grid = bb.features_batch(imgs, FeatureSpec(timesteps=(5, 50, 300), blocks=("up0",)))
    alone = bb.features_batch(imgs, FeatureSpec(timesteps=(50,), blocks=("up0",)))
    np.testing.assert_array_equal(grid[("up0", 50)], alone[("up0", 50)])


def test_pooling_options_change_dimensions(tiny_run, synth_images):
    bb = load_backbone(tiny_run)
    imgs = synth_images.images[:3]
    dims = {p: bb.features_batch(imgs, FeatureSpec(timesteps=(10,), blocks=("mid",), pooling=p))[("mid", 10)].shape[1]
            for p in ("avg", "max", "avgmax", "grid2")}
    assert dims == {"avg": 32, "max": 32, "avgmax": 64, "grid2": 128}
    with pytest.raises(DiffprobeError, match="FeatureSpec.pooling: Input should be 'avg', 'max'"):
        FeatureSpec(pooling="median")
    with pytest.raises(DiffprobeError, match=r"FeatureSpec.timesteps\[0\]: Input should be less than 1000"):
        FeatureSpec(timesteps=(1000,))


def test_cache_hit_and_invalidation(tiny_run, synth_images, tiny_store, monkeypatch):
    root = tiny_store.path.parent
    calls = []
    original = DDPMBackbone.features_batch
    monkeypatch.setattr(DDPMBackbone, "features_batch", lambda self, *a: calls.append(1) or original(self, *a))
    again = extract_features(tiny_run, synth_images, FeatureSpec(timesteps=(5, 50, 300)), root, progress=False)
    assert again.path == tiny_store.path and calls == []
    other = extract_features(tiny_run, synth_images, FeatureSpec(timesteps=(5, 50, 300), pooling="max"), root,
                             progress=False)
    assert other.path != tiny_store.path and calls
    fewer = synth_images.__class__(**{**synth_images.__dict__, "images": synth_images.images[:-1].copy(),
                                      "labels": synth_images.labels[:-1], "splits": synth_images.splits[:-1],
                                      "paths": synth_images.paths[:-1]})
    assert extract_features(tiny_run, fewer, FeatureSpec(timesteps=(5,)), root, progress=False).path.parent == root


def test_interrupted_extraction_resumes_and_partial_store_is_never_used(tiny_run, synth_images, tmp_path,
                                                                         monkeypatch):
    spec = FeatureSpec(timesteps=(10, 100))
    ref = extract_features(tiny_run, synth_images, spec, tmp_path / "ref", batch_size=16, progress=False)
    original = DDPMBackbone.features_batch
    calls = []

    def crash_after_five(self, images, s):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return original(self, images, s)

    monkeypatch.setattr(DDPMBackbone, "features_batch", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        extract_features(tiny_run, synth_images, spec, tmp_path / "cut", batch_size=16, progress=False, flush_every=2)
    (partial,) = (tmp_path / "cut").glob(".features-*.partial")
    assert not list((tmp_path / "cut").glob("features-*"))  # nothing looks complete
    with pytest.raises(DiffprobeError, match="not a complete feature store"):
        FeatureStore(partial)
    monkeypatch.setattr(DDPMBackbone, "features_batch", original)
    done = extract_features(tiny_run, synth_images, spec, tmp_path / "cut", batch_size=16, progress=False)
    for b, t in ref.pairs:
        np.testing.assert_array_equal(ref.get(b, t), done.get(b, t))


def test_wrong_image_size_is_refused(tiny_run, synth_images, tmp_path):
    arr = synth_images.__class__(**{**synth_images.__dict__, "images": np.zeros((4, 24, 24), np.uint8),
                                    "labels": synth_images.labels[:4], "splits": synth_images.splits[:4],
                                    "paths": synth_images.paths[:4]})
    with pytest.raises(DiffprobeError, match="trained on 16 px"):
        extract_features(tiny_run, arr, FeatureSpec(timesteps=(1,)), tmp_path, progress=False)


def test_grid_features_of_every_view_are_aligned_to_the_image():
    """Averaging gridN features over views must average the same part of the organism, not the same corner
    of each rotated view."""
    images = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    want = pool(torch.from_numpy(images)[:, None], "grid4").numpy()
    for v in range(8):
        seen = pool(torch.from_numpy(dihedral(images, v))[:, None], "grid4").numpy()
        np.testing.assert_allclose(undo_dihedral_grid(seen, v, 4), want, atol=1e-6)
        if v:
            assert not np.allclose(seen, want)

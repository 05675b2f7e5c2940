"""DiffusionFeatures: frozen diffusion features as a scikit-learn transformer (on the tiny trained U-Net)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as checks

from diffprobe.backbones import load_backbone
from diffprobe.data import Manifest
from diffprobe.features import DiffusionFeatures, FeatureSpec
from diffprobe.features.extract import view_features
from diffprobe.utils import DiffprobeError


def test_transform_gives_the_feature_stores_features(tiny_run, synth_images):
    images = synth_images.images[:20]
    tf = DiffusionFeatures(model=str(tiny_run), pairs=[("up1", 10), ("mid", 50)], views=2)
    assert tf.fit(images) is tf
    x = tf.transform(images)
    assert x.dtype == np.float32 and x.shape == (20, 16 + 32) and np.isfinite(x).all()
    ref = view_features(load_backbone(tiny_run), images, FeatureSpec(timesteps=(10, 50), blocks=("up1", "mid"), views=2))
    np.testing.assert_allclose(x, np.concatenate([ref[("up1", 10)], ref[("mid", 50)]], axis=1), rtol=1e-5, atol=1e-6)
    names = tf.get_feature_names_out()
    assert len(names) == x.shape[1] == tf.n_features_out_ and names[0] == "up1_t10_0" and names[-1] == "mid_t50_31"
    # A list of (S, S) arrays and a batch size smaller than the input give the same rows.
    np.testing.assert_allclose(tf.set_params(batch_size=7).transform(list(images)), x, rtol=1e-5, atol=1e-6)
    assert tf.transform(images[:0]).shape == (0, 48)


def test_transform_reads_files_as_the_model_was_trained(tiny_run, synth_split, synth_images):
    m = Manifest.load(synth_split)
    paths = [m.full_path(i) for i in range(5)]
    tf = DiffusionFeatures(model=tiny_run, pairs=[("up0", 10)]).fit(paths)
    np.testing.assert_allclose(tf.transform([str(p) for p in paths]), tf.transform(synth_images.images[:5]),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(DiffprobeError, match="missing.png"):
        tf.transform([paths[0].with_name("missing.png")])
    with pytest.raises(DiffprobeError, match=r"uint8 arrays of shape \(N, 16, 16\)"):
        tf.transform(synth_images.images[:3].astype(np.float32) / 255)
    with pytest.raises(DiffprobeError, match="not a mix"):
        tf.transform([paths[0], synth_images.images[0]])


def test_parameters_are_checked_by_fit_not_init(tiny_run):
    tf = DiffusionFeatures(model=tiny_run, pairs=[("up9", 10)], pooling="median")
    assert tf.get_params()["pooling"] == "median" and tf.pairs == [("up9", 10)]  # stored unchanged
    with pytest.raises(NotFittedError):
        tf.transform(np.zeros((1, 16, 16), np.uint8))
    with pytest.raises(DiffprobeError, match="pooling"):
        tf.fit()
    with pytest.raises(DiffprobeError, match="no block 'up9'.*up1"):
        tf.set_params(pooling="avg").fit()
    for bad in ([], [("up1",)], [("up1", 1.5)], "up1"):
        with pytest.raises(DiffprobeError, match="pairs"):
            DiffusionFeatures(model=tiny_run, pairs=bad).fit()
    with pytest.raises(DiffprobeError, match="model=PATH"):
        DiffusionFeatures().fit()


def test_sklearn_conventions_that_apply_to_image_inputs():
    # sklearn's full check_estimator feeds random (n, k) tables; this transformer reads images, so only the
    # checks of the estimator's API (not of its numerical behaviour on tables) apply.
    est = DiffusionFeatures()
    name = type(est).__name__
    for check in (checks.check_no_attributes_set_in_init, checks.check_parameters_default_constructible,
                  checks.check_get_params_invariance, checks.check_set_params, checks.check_estimator_cloneable,
                  checks.check_estimator_repr, checks.check_mixin_order, checks.check_valid_tag_types,
                  checks.check_do_not_raise_errors_in_init_or_set_params):
        check(name, est)


def test_pipeline_with_grid_search_over_pairs_and_c(tiny_run, synth_images):
    x, y = synth_images.part("train")
    xt, yt = synth_images.part("test")
    pipe = make_pipeline(DiffusionFeatures(model=tiny_run, pairs=[("up1", 10)]), StandardScaler(),
                         LogisticRegression(max_iter=300))
    search = GridSearchCV(pipe, {"diffusionfeatures__pairs": [[("up1", 10)], [("mid", 10), ("up1", 10)]],
                                 "logisticregression__C": [0.1, 1.0]}, cv=2)
    search.fit(x, y)  # each candidate is a clone: the parameters survive clone unchanged
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.named_steps["diffusionfeatures"].pairs in ([("up1", 10)], [("mid", 10), ("up1", 10)])
    acc = best.score(xt, yt)
    chance = 1 / len(synth_images.classes)
    assert acc > chance, (acc, chance)
    # The fitted transformer's feature names flow through the pipeline.
    assert len(best[:-1].get_feature_names_out()) == best.named_steps["logisticregression"].coef_.shape[1]

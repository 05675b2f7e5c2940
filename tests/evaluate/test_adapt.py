"""Few-shot adaptation: a new head on the frozen features, evaluated on images it never saw."""

import json

import numpy as np

from diffprobe.cli import main
from diffprobe.data.manifest import scan_folder
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.workflows.adapt import adapt_bundle


def test_adapt_learns_new_classes_from_a_few_labels(field_run, tmp_path):
    data = scan_folder(field_run["data"])
    rng = np.random.default_rng(0)
    few = np.zeros(len(data), bool)
    for c in data.classes:  # 10 labelled images per class; the rest are kept to test the adapted bundle
        few[rng.choice(np.flatnonzero(np.array(data.labels) == c), 10, replace=False)] = True
    r = adapt_bundle(field_run["bundle"], data.subset(few), tmp_path / "adapted", progress=False)
    assert r["n_images"] == 10 * len(data.classes) and set(r["per_class"].values()) == {10}
    adapted = ClassifierBundle.load(tmp_path / "adapted")
    assert adapted.classes == data.classes and adapted.preprocess.polarity == "auto"
    rest = data.subset(~few)
    files = [rest.full_path(i) for i in range(len(rest))]
    acc = np.mean([p == lab for p, lab in zip(adapted.predict(files), rest.labels)])
    assert acc > 3 / len(data.classes)  # far above chance (1 / 8) on unseen images
    assert json.loads((tmp_path / "adapted" / "adapt.json").read_text())["C"] in (0.01, 0.1, 1.0)


def test_adapt_cli_reports_cross_validated_scores(field_run, tmp_path, capsys):
    assert main(["adapt", "--model", str(field_run["bundle"]), "--data", str(field_run["data"]),
                 "--out", str(tmp_path / "a"), "--crop"]) == 0
    assert "cross-validated accuracy" in capsys.readouterr().out
    # The adapted bundle reads new images the way its head was fitted: cropped to the organism.
    assert ClassifierBundle.load(tmp_path / "a").preprocess.crop is True
    assert ClassifierBundle.load(field_run["bundle"]).preprocess.crop is False


def test_fit_adapted_head_is_the_grid_search_fast_and_deterministic():
    """The fast fit (held-out logits kept, C path warm-started, fits in the rows' span) chooses the C a grid search
    with cross_val_predict chooses and gives about its logits; twice the same result; binary gives 2 logits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from diffprobe.probe.readout import CS, fit_adapted_head

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 15)
    x = (rng.normal(0, 0.4, (4, 150))[y] + rng.normal(0, 1, (len(y), 150))).astype(np.float32)  # 60 rows, 150-D
    head, cv_logits, c = fit_adapted_head(x, y, seed=3)
    folds = StratifiedKFold(5, shuffle=True, random_state=3)
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                          {"logisticregression__C": list(CS)}, cv=folds, scoring="neg_log_loss").fit(x, y)
    assert c == search.best_params_["logisticregression__C"]
    reference = cross_val_predict(search.best_estimator_, x, y, cv=folds, method="decision_function")
    assert (cv_logits.argmax(1) == reference.argmax(1)).mean() >= 0.95
    assert np.abs(cv_logits - reference).max() < 0.1 * np.abs(reference).max()
    full = search.best_estimator_.decision_function(x)
    assert np.abs(head.logits(x) - full).max() < 0.1 * np.abs(full).max()
    again = fit_adapted_head(x, y, seed=3)
    np.testing.assert_array_equal(again[1], cv_logits)
    binary = fit_adapted_head(x[y < 2], y[y < 2])
    assert binary[0].logits(x[:3]).shape == (3, 2) and binary[1].shape == (30, 2)


def test_hidden_readout_keeps_the_source_hidden_layer_under_a_new_output(field_run, tmp_path):
    """readout='hidden': a logistic regression on the source MLP head's hidden activations, folded into one MLP
    head that reads the same features; 'auto' keeps the readout with the lower cross-validated log loss; a
    linear source head has no hidden layer to read."""
    import pytest
    from scipy.special import log_softmax

    from diffprobe.probe.mlp import MLPHead
    from diffprobe.probe.readout import fit_adapted_head, fit_readout
    from diffprobe.utils import DiffprobeError
    from diffprobe.workflows.adapt import adaptation_features, bundle_from_features

    linear = ClassifierBundle.load(field_run["bundle"])
    x, y, classes, _ = adaptation_features(linear, scan_folder(field_run["data"]), progress=False)
    rng = np.random.default_rng(0)
    d, h, c = x.shape[1], 32, len(linear.classes)
    mlp = MLPHead(x.mean(0), x.std(0) + 1e-3, rng.normal(0, d ** -0.5, (d, h)).astype(np.float32),
                  np.zeros(h, np.float32), rng.normal(0, 1, (h, c)).astype(np.float32), np.zeros(c, np.float32))
    ClassifierBundle.save(tmp_path / "mlp", model_dir=linear.path / "backbone", head=mlp, meta=dict(linear.meta))
    source = ClassifierBundle.load(tmp_path / "mlp")

    r = bundle_from_features(source, x, y, classes, tmp_path / "adapted", origin={}, readout="hidden")
    adapted = ClassifierBundle.load(tmp_path / "adapted")
    assert r["readout"] == "hidden" and isinstance(adapted.head, MLPHead)
    np.testing.assert_array_equal(adapted.head.w1, mlp.w1)
    output = fit_adapted_head(mlp.hidden(x), y, seed=0)[0]
    np.testing.assert_allclose(adapted.head.logits(x), output.logits(mlp.hidden(x)), rtol=1e-4, atol=1e-3)

    def cv_loss(readout):
        cv_logits = fit_readout(mlp, x, y, readout=readout)[1]
        return -log_softmax(cv_logits, axis=1)[np.arange(len(y)), y].mean()

    used = fit_readout(mlp, x, y, readout="auto")[3]
    assert cv_loss(used) == min(cv_loss("hidden"), cv_loss("features"))
    assert fit_readout(linear.head, x, y, readout="auto")[3] == "features"
    with pytest.raises(DiffprobeError, match="MLP head"):
        fit_readout(linear.head, x, y, readout="hidden")


def test_the_commands_readout_settings_are_the_librarys():
    """``fit_readout`` lives in the library (``probe.readout``); the command's settings (``workflows.config``, read
    without torch) show its choices and defaults."""
    import inspect

    from diffprobe.probe.readout import READOUTS, fit_readout
    from diffprobe.workflows import config

    assert config.READOUTS == READOUTS
    params = inspect.signature(fit_readout).parameters
    assert (params["readout"].default, params["seed"].default) == (config.AdaptConfig.readout, config.AdaptConfig.seed)

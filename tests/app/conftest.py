"""A tiny app project, built once per session by the real pipeline, and a fresh copy of it per test.

synthetic images (8 classes x 10, 32 px, one folder per class) -> 16 px DDPM U-Net (16, 32) trained 5 steps ->
features at t=10 -> linear probe -> bundle -> ``diffprobe app init`` (about 10 s on 2 cores). The model is
poor on purpose: the app is under test, not the classifier. Class folders give each image's true class.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def app_bundle(tmp_path_factory) -> dict[str, Path]:
    """``data`` (one folder per class) and ``bundle`` (its classifier bundle)."""
    from diffprobe.backbones.ddpm_unet import UNetConfig
    from diffprobe.data.dataset import load_images
    from diffprobe.data.manifest import prepare_split
    from diffprobe.data.preprocess import Preprocess
    from diffprobe.features.extract import FeatureSpec
    from diffprobe.features.store import extract_features
    from diffprobe.pretrain.ddpm import PretrainConfig, pretrain
    from diffprobe.probe.linear import GridProbe
    from diffprobe.workflows.datasets import write_synthetic
    from diffprobe.workflows.probe import run_probe

    root = tmp_path_factory.mktemp("app_bundle")
    data = write_synthetic(root / "images", n_per_class=10, size=32, seed=0)
    arr = load_images(prepare_split(data, seed=0), Preprocess(16), progress=False)
    cfg = PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=5, batch_size=16, lr=1e-3,
                         warmup_steps=1, checkpoint_every=1000, seed=0)
    run_dir = pretrain(arr.part("train")[0], root / "ddpm", cfg, progress=False, sample=False)
    store = extract_features(run_dir, arr, FeatureSpec(timesteps=(10,)), root / "features", progress=False)
    run_probe(store, root / "probe", probe=GridProbe(epochs=20, lr=1e-2, patience=50, seed=0))
    return {"data": Path(data), "bundle": root / "probe" / "bundle"}


@pytest.fixture(scope="session")
def pristine_project(app_bundle, tmp_path_factory) -> Path:
    from diffprobe.app.project import init_project

    out = tmp_path_factory.mktemp("app_project") / "project"
    init_project(out, app_bundle["data"], app_bundle["bundle"], chunk=32, progress=False)
    return out


@pytest.fixture
def project_dir(pristine_project, tmp_path) -> Path:
    """A fresh copy of the tiny project, for a test to change."""
    return Path(shutil.copytree(pristine_project, tmp_path / "project"))


@pytest.fixture
def project(project_dir):
    from diffprobe.app.project import Project

    p = Project.open(project_dir)
    yield p
    p.close()


@pytest.fixture
def client(project):
    from fastapi.testclient import TestClient

    from diffprobe.app.server import create_app

    with TestClient(create_app(project, user="tester")) as c:
        yield c


"""Shared fixtures: tiny synthetic datasets and a tiny pretrained U-Net (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The real datasets live where DIFFPROBE_DATA says (CI passes it in); without it those tests skip.
DATA = Path(os.environ["DIFFPROBE_DATA"]) if os.environ.get("DIFFPROBE_DATA") else None


def real_data(name: str) -> Path:
    """``$DIFFPROBE_DATA/<name>``, or a clean skip saying why."""
    if DATA is None or not (DATA / name).is_dir():
        pytest.skip(f"{name} images not found: set DIFFPROBE_DATA to the folder holding the datasets "
                    f"(tests that read real images skip without them)")
    return DATA / name


@pytest.fixture
def ndsb_dir() -> Path:
    """The real NDSB images (``$DIFFPROBE_DATA/ndsb/images``), or a clean skip."""
    return real_data("ndsb") / "images"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Never write into the user's ~/.cache during tests.
    monkeypatch.setenv("DIFFPROBE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    from diffprobe.data import synthetic

    return synthetic.generate(tmp_path_factory.mktemp("synth") / "images", n_per_class=40, size=32, seed=0)


@pytest.fixture(scope="session")
def synth_split(synth_dir, tmp_path_factory):
    from diffprobe.workflows.pipeline import split

    path = tmp_path_factory.mktemp("split") / "split.csv"
    split(synth_dir, path, seed=0)
    return path


@pytest.fixture(scope="session")
def synth_images(synth_split):
    from diffprobe.data import Manifest, Preprocess, load_images

    return load_images(Manifest.load(synth_split), Preprocess(size=16), progress=False)


TINY_STEPS = 40


@pytest.fixture(scope="session")
def tiny_cfg():
    from diffprobe.backbones import UNetConfig
    from diffprobe.pretrain import PretrainConfig

    return PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=TINY_STEPS, batch_size=16,
                          lr=1e-3, warmup_steps=5, checkpoint_every=20, seed=0)


@pytest.fixture(scope="session")
def tiny_run(synth_images, tiny_cfg, tmp_path_factory) -> Path:
    """A tiny DDPM U-Net trained for a few steps on the synthetic train part."""
    from diffprobe.pretrain import pretrain

    out = tmp_path_factory.mktemp("run") / "ddpm"
    pretrain(synth_images.part("train")[0], out, tiny_cfg, progress=False, sample=False)
    return out


@pytest.fixture(scope="session")
def tiny_store(tiny_run, synth_images, tmp_path_factory):
    from diffprobe.features import FeatureSpec, extract_features

    return extract_features(tiny_run, synth_images, FeatureSpec(timesteps=(5, 50, 300)),
                            tmp_path_factory.mktemp("features"), progress=False)


@pytest.fixture(scope="session")
def tiny_probe(tiny_store, tmp_path_factory):
    from diffprobe.probe import GridProbe, run_probe

    out = tmp_path_factory.mktemp("probe")
    return out, run_probe(tiny_store, out, probe=GridProbe(epochs=30, seed=0))

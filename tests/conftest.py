"""Shared fixtures: tiny synthetic datasets and a tiny pretrained U-Net (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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
    from diffprobe.workflows.datasets import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synth") / "images", n_per_class=40, size=32, seed=0)


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

    # Batch 32: the features of this U-Net are the ones tests/evaluate's bundle was tuned on (batch 16 gives
    # features of tiny spread that a standardised head amplifies, and bf16 / fp16 rounding with them).
    return PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=TINY_STEPS, batch_size=32,
                          lr=1e-3, warmup_steps=5, checkpoint_every=20, seed=0)


class TinyPipeline:
    """The tiny pipeline on the synthetic images (8 classes x 40, 32 px -> split -> 16 px): DDPM U-Net ->
    features -> linear probes -> bundle. Each stage is built once per session for each distinct setting, so the
    fixtures that need a tiny classifier (here, tests/evaluate, tests/probe ...) share one training instead of
    repeating it."""

    def __init__(self, images, tmp_path_factory):
        self.images, self._tmp, self._done = images, tmp_path_factory, {}

    def _once(self, key, make):
        if key not in self._done:
            self._done[key] = make()
        return self._done[key]

    def run(self, cfg) -> Path:
        """A DDPM U-Net pretrained with ``cfg`` on the train part."""
        from diffprobe.pretrain import pretrain

        return self._once(("run", repr(cfg)), lambda: pretrain(
            self.images.part("train")[0], self._tmp.mktemp("run") / "ddpm", cfg, progress=False, sample=False))

    def store(self, cfg, timesteps: tuple[int, ...]):
        """The features of every image at ``timesteps`` (every block) of ``run(cfg)``."""
        from diffprobe.features import FeatureSpec, extract_features

        run = self.run(cfg)
        return self._once(("store", repr(cfg), timesteps), lambda: extract_features(
            run, self.images, FeatureSpec(timesteps=timesteps), self._tmp.mktemp("features"), progress=False))

    def probe(self, cfg, timesteps: tuple[int, ...], **probe) -> tuple[Path, dict]:
        """(folder, results) of ``run_probe`` with ``GridProbe(**probe)`` on ``store(cfg, timesteps)``; the
        bundle is ``folder / "bundle"``."""
        from diffprobe.probe import GridProbe
        from diffprobe.workflows.probe import run_probe

        store = self.store(cfg, timesteps)

        def make():
            out = self._tmp.mktemp("probe")
            return out, run_probe(store, out, probe=GridProbe(**probe))

        return self._once(("probe", repr(cfg), timesteps, tuple(sorted(probe.items()))), make)


@pytest.fixture(scope="session")
def tiny_pipeline(synth_images, tmp_path_factory) -> TinyPipeline:
    return TinyPipeline(synth_images, tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_run(tiny_pipeline, tiny_cfg) -> Path:
    """A tiny DDPM U-Net trained for a few steps on the synthetic train part."""
    return tiny_pipeline.run(tiny_cfg)


@pytest.fixture(scope="session")
def tiny_store(tiny_pipeline, tiny_cfg):
    return tiny_pipeline.store(tiny_cfg, (5, 50, 300))


@pytest.fixture(scope="session")
def tiny_probe(tiny_pipeline, tiny_cfg):
    return tiny_pipeline.probe(tiny_cfg, (5, 50, 300), epochs=30, seed=0)


# ---- per-image predictions: a bundle re-read against what its probe measured ---------------------------------
# Accuracies of 48 images move by 2 points when one borderline image flips (bf16 against fp32, a BLAS with
# another summation order), so tests compare predictions image by image and allow MAX_FLIPS of them to differ.
MAX_FLIPS = 1


class Predictions:
    @staticmethod
    def from_store(bundle_dir: Path, store, part: str = "test") -> np.ndarray:
        """The class index the bundle's head gives each image of ``part`` from the stored features (what the
        probe measured)."""
        from diffprobe import ClassifierBundle

        meta, head = ClassifierBundle.load_head(bundle_dir)
        mask = store.splits == part
        cols = [np.asarray(store.get(b, int(t)))[mask] for b, t in meta["pairs"]]
        if meta.get("metadata"):
            cols.append(store.metadata[mask])
        return head.logits(np.concatenate(cols, axis=1)).argmax(1)

    @staticmethod
    def reread(bundle_dir: Path, split_csv: Path, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """(class index predicted, true class index) of each image of ``part``, read from disk and through the
        backbone again, as ``evaluate`` reads them, in the split's order."""
        from diffprobe import ClassifierBundle
        from diffprobe.data.manifest import Manifest

        bundle = ClassifierBundle.load(bundle_dir)
        m = Manifest.load(split_csv)
        arr = bundle.read_split(m.subset(m.split_mask(part)), classes=bundle.classes, progress=False)
        return bundle.logits(arr.images, arr.meta).argmax(1), arr.labels

    @staticmethod
    def flips(a: np.ndarray, b: np.ndarray, max_flips: int = MAX_FLIPS) -> int:
        """The number of images whose class differs between ``a`` and ``b``; fails above ``max_flips``."""
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and len(a) > 0
        n = int((a != b).sum())
        assert n <= max_flips, f"{n} of {len(a)} images changed class (at most {max_flips} may, by rounding)"
        return n


@pytest.fixture(scope="session")
def predictions() -> type[Predictions]:
    return Predictions

"""A tiny classifier bundle built once per session by the real pipeline.

synthetic images (8 classes x 40, 32 px) -> split -> 16 px -> DDPM U-Net (16, 32) trained 40 steps ->
features at t=10 -> linear probes -> bundle/. Test accuracy is about 45% (chance 12.5%): weak, but far
enough above chance for shifts and calibration to have measurable effects.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def field_run(tmp_path_factory) -> dict[str, Path]:
    """Paths of the tiny run: ``data`` (class folders), ``split`` (split.csv), ``bundle`` (bundle folder)."""
    from diffprobe.backbones.ddpm_unet import UNetConfig
    from diffprobe.data import synthetic
    from diffprobe.data.dataset import load_images
    from diffprobe.data.manifest import prepare_split
    from diffprobe.data.preprocess import Preprocess
    from diffprobe.features.extract import FeatureSpec
    from diffprobe.features.store import extract_features
    from diffprobe.pretrain.ddpm import PretrainConfig, pretrain
    from diffprobe.probe.linear import GridProbe
    from diffprobe.probe.run import run_probe

    root = tmp_path_factory.mktemp("field")
    data = synthetic.generate(root / "synthetic", n_per_class=40, size=32, seed=0)
    manifest = prepare_split(data, seed=0)
    split_csv = manifest.save(root / "split.csv")
    arr = load_images(manifest, Preprocess(16), progress=False)
    cfg = PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=40, batch_size=32, lr=1e-3,
                         warmup_steps=5, checkpoint_every=1000, seed=0)
    run_dir = pretrain(arr.part("train")[0], root / "ddpm", cfg, progress=False, sample=False)
    store = extract_features(run_dir, arr, FeatureSpec(timesteps=(10,)), root / "features", progress=False)
    run_probe(store, root / "probe", probe=GridProbe(epochs=100, lr=1e-2, patience=50, seed=0))
    return {"root": root, "data": Path(data), "split": split_csv, "bundle": root / "probe" / "bundle"}

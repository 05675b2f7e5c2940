"""The stages as plain Python functions on paths: the CLI calls these, users can too.

Each stage reads the artifacts of the one before it from disk and writes its own:

    split           data folder / CSV    -> split.csv (+ split.json)
    pretrain        split.csv            -> run dir (unet/, scheduler/, preprocess.json, checkpoint/)
    baseline        split.csv            -> run dir (model.safetensors, backbone.json, preprocess.json, checkpoint/)
    rcdit-pretrain  split.csv            -> run dir (rcdit.safetensors, backbone.json, preprocess.json, checkpoint/)
    features        run dir + split.csv  -> feature store (features-<key>/)
    probe           feature store        -> results.json, report.md, heatmap.png, confusion.png, bundle/
    cluster         feature store        -> cluster.json

The trainers (``pretrain``) train on images in memory; ``run_pretrain``, ``run_baseline`` and
``run_rcdit_pretrain`` read the train part of a split for them, as the model will read images.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..backbones.ddpm_unet import UNetConfig
from ..data.dataset import load_split_images, model_preprocess
from ..data.manifest import Manifest, prepare_split
from ..data.preprocess import Preprocess
from ..evaluate.cluster import cluster_store
from ..features.extract import FeatureSpec
from ..features.store import FeatureStore, extract_features
from ..pretrain.baselines import BaselineConfig, train_baseline
from ..pretrain.ddpm import PretrainConfig, pretrain
from ..pretrain.rcdit import RCDiTPretrainConfig, pretrain_rcdit
from ..probe.linear import GridProbe
from ..config.data import SplitConfig
from ..config.features import ExtractConfig
from ..utils import read_json, resolve_precision, write_json
from .config import DemoConfig
from .datasets import write_synthetic
from .probe import run_probe

log = logging.getLogger(__name__)


def split(data: str | Path, out: str | Path, *, setting: str = SplitConfig.setting,
          per_class: int = SplitConfig.per_class, val: float = SplitConfig.val, test: float = SplitConfig.test,
          seed: int = SplitConfig.seed) -> Manifest:
    """Make (or keep) a stratified split of ``data`` and save it as ``out`` (CSV)."""
    m = prepare_split(data, setting=setting, per_class=per_class, val=val, test=test, seed=seed)
    m.save(out)
    return m


def run_pretrain(manifest: str | Path, out: str | Path, cfg: PretrainConfig, *, resume: bool = False,
                 progress: bool = True) -> Path:
    """Pretrain on the train part of a split (labels unused; val and test images are never seen)."""
    arr = load_split_images(manifest, Preprocess.for_training(cfg), report_dir=out, progress=progress)
    return pretrain(arr.training_part(manifest)[0], out, cfg, resume=resume, progress=progress)


def run_baseline(manifest: str | Path | Manifest, out: str | Path, cfg: BaselineConfig, *, resume: bool = False,
                 progress: bool = True, teacher_probs: np.ndarray | None = None) -> Path:
    """Train a baseline on the train part of a split (val and test images are never seen); ``teacher_probs``: as
    ``train_baseline``'s, one row per train image in the split's order."""
    arr = load_split_images(manifest, Preprocess.for_training(cfg), report_dir=out, progress=progress)
    images, labels = arr.training_part(manifest)
    return train_baseline(images, out, cfg, labels=labels, n_classes=len(arr.classes), resume=resume,
                          progress=progress, teacher_probs=teacher_probs)


def run_rcdit_pretrain(manifest: str | Path | Manifest, out: str | Path, cfg: RCDiTPretrainConfig, *,
                       resume: bool = False, progress: bool = True) -> Path:
    """Train an RC-DiT on the train part of a split (labels unused; val and test images are never seen)."""
    arr = load_split_images(manifest, Preprocess.for_training(cfg), report_dir=out, progress=progress)
    return pretrain_rcdit(arr.training_part(manifest)[0], out, cfg, resume=resume, progress=progress)


def run_features(model_dir: str | Path, manifest: str | Path, out_root: str | Path, spec: FeatureSpec, *,
                 batch_size: int = ExtractConfig.batch_size, crop: bool | None = ExtractConfig.crop,
                 progress: bool = True) -> FeatureStore:
    """Features of every image of ``manifest`` read as the model was trained to read them (``crop``: cut to the
    organism or not, whatever the model's own setting; None keeps it)."""
    pre = model_preprocess(model_dir)
    pre = pre if crop is None else replace(pre, crop=crop)
    arr = load_split_images(manifest, pre, report_dir=out_root, progress=progress)
    return extract_features(model_dir, arr, spec, out_root, batch_size=batch_size, progress=progress)


def run_cluster(store: str | Path | FeatureStore, out: str | Path, **kw) -> dict:
    """k-means on one pair of ``store`` (``evaluate.cluster.cluster_store``: ``kw`` names the pair, the part, k, the
    seed or the probe's ``results``); writes ``out/cluster.json``, returns the scores."""
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    scores = cluster_store(store, **kw)
    write_json(Path(out) / "cluster.json", scores)
    return scores


def demo(out: str | Path, *, data: str | Path | None = None, image_size: int = DemoConfig.image_size,
         steps: int = DemoConfig.steps, channels: tuple[int, ...] = DemoConfig.channels,
         timesteps: tuple[int, ...] = DemoConfig.timesteps, n_per_class: int = DemoConfig.n_per_class,
         seed: int = DemoConfig.seed, precision: str = DemoConfig.precision, progress: bool = True,
         resume: bool = True) -> dict:
    """The whole pipeline on synthetic plankton (or a real folder ``data``): split, pretrain, features,
    probe, cluster. Writes results.json, report.md, heatmap.png, ... to ``out``; returns the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if data is None:
        data = out / "synthetic"
        if not data.is_dir():
            write_synthetic(data, n_per_class=n_per_class, size=64, seed=seed)
    manifest = out / "split.csv"
    split(data, manifest, seed=seed)
    cfg = PretrainConfig(unet=UNetConfig(image_size=image_size, channels=tuple(channels)), steps=steps,
                         batch_size=32, lr=1e-3, warmup_steps=50, checkpoint_every=200, seed=seed,
                         precision=precision)
    run_dir = out / "ddpm"
    if (run_dir / "unet").is_dir() and read_json(run_dir / "summary.json").get("step") == steps:
        log.info("reusing the trained model in %s", run_dir)
    else:
        run_pretrain(manifest, run_dir, cfg, resume=resume, progress=progress)
    store = run_features(run_dir, manifest, out / "features", FeatureSpec(timesteps=timesteps, seed=seed, precision=precision),
                         progress=progress)
    results = run_probe(store, out, probe=GridProbe(seed=seed, precision=precision), title="demo: linear-probe accuracy")
    results["cluster"] = run_cluster(store, out, results=results, seed=seed)
    write_json(out / "results.json", results)
    write_json(out / "timing.json", {**read_json(out / "timing.json"), "demo_wall_seconds": round(time.time() - t0, 1),
                                         "precision": resolve_precision(precision)})
    return results

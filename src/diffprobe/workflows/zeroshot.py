"""The ``zeroshot`` command: zero-shot classification from a frozen representation, no classifier trained on
labels (the methods, prototypes and k-NN, the diffusion classifier and the binary task, are ``evaluate.zeroshot``'s).

``zeroshot`` reads the representation of every image (feature stores written under ``out/features``), evaluates
each method on the test part with the train part as references, and writes ``zeroshot.json`` and ``zeroshot.md``;
``run_zeroshot`` first reads the images of a split the way the model was trained to read them.
``probe_representation``: the best pair of a ``diffprobe probe`` run, read the way the probe read it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..backbones.base import Backbone, load_backbone
from ..backbones.rcdit import ENCODER, RCDiTBackbone
from ..config.evaluate import ZeroShotConfig
from ..config.features import ExtractConfig
from ..data.dataset import ImageArray, load_split_images, model_preprocess
from ..data.manifest import Manifest
from ..evaluate.zeroshot import (binary_task, knn_predict, normalise, prototype_episodes, prototype_predict,
                                 resolve_representation, run_diffusion_classifier)
from ..features.extract import FeatureSpec
from ..features.store import extract_features
from ..probe.metrics import chance_accuracy, classification_metrics
from ..report.tables import zeroshot_report
from ..utils import DiffprobeError, read_json, stable_seed, write_json


def _labelled_part(arr: ImageArray, split: str) -> np.ndarray:
    mask = (arr.splits == split) & (arr.labels >= 0)
    if not mask.any():
        raise DiffprobeError(f"the {split!r} part of the data is empty or unlabelled; zero-shot evaluation needs "
                             f"labelled train (references) and test parts: pass a split manifest "
                             f"('diffprobe split') with labels")
    return np.flatnonzero(mask)


def probe_representation(results: str | Path) -> dict:
    """The representation a ``diffprobe probe`` run chose: its best (block, timestep), with the pooling and the
    noise ensemble it read them with (``results``: its results.json), as ``ZeroShotConfig`` fields."""
    r = read_json(results)
    if "best" not in r or "feature_spec" not in r:
        raise DiffprobeError(f"{results}: not a results.json of 'diffprobe probe' (no best pair)")
    return {"block": r["best"]["block"], "timestep": r["best"]["timestep"],
            **{k: r["feature_spec"][k] for k in ("pooling", "n_noise")}}


def run_zeroshot(model: str | Path, manifest: str | Path | Manifest, out_dir: str | Path,
                 cfg: ZeroShotConfig = ZeroShotConfig(), *, batch_size: int = ExtractConfig.batch_size,
                 progress: bool = True) -> dict:
    """``zeroshot`` of the backbone folder ``model`` on the split ``manifest``, its images read as the model was
    trained to read them (its ``preprocess.json``; unreadable files listed in ``out_dir/skipped.csv``)."""
    images = load_split_images(manifest, model_preprocess(model), report_dir=out_dir, progress=progress)
    return zeroshot(model, images, out_dir, cfg, batch_size=batch_size, progress=progress)


def zeroshot(model: str | Path | Backbone, images: ImageArray, out_dir: str | Path,
             cfg: ZeroShotConfig = ZeroShotConfig(), *, batch_size: int = ExtractConfig.batch_size,
             progress: bool = True) -> dict:
    """Zero-shot evaluation of ``model`` on ``images`` (references: train part; evaluated: test part).

    Writes ``zeroshot.json`` and ``zeroshot.md`` (and the feature stores under ``features/``) to
    ``out_dir``; returns the results dict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backbone = model if isinstance(model, Backbone) else load_backbone(model)
    block, t = resolve_representation(backbone, cfg.block, cfg.timestep)
    tr, te = _labelled_part(images, "train"), _labelled_part(images, "test")
    n_classes = len(images.classes)
    y_tr, y_te = images.labels[tr], images.labels[te]

    def features(b: str, ts: int) -> np.ndarray:
        spec = FeatureSpec(timesteps=(ts,), blocks=(b,), pooling=cfg.pooling, n_noise=cfg.n_noise, seed=cfg.seed,
                           precision=cfg.precision)
        store = extract_features(backbone, images, spec, out / "features", batch_size=batch_size, progress=progress)
        return np.asarray(store.get(b, ts), dtype=np.float32)

    raw = features(block, t)
    mean = raw[tr].mean(0) if cfg.center else None
    z_tr, z_te = normalise(raw[tr], mean), normalise(raw[te], mean)

    results: dict = {
        "model": str(backbone.path), "backbone": backbone.kind, "representation": {"block": block, "timestep": t},
        "dim": int(raw.shape[1]), "n_classes": n_classes, "classes": images.classes,
        "n_train_references": len(tr), "n_test": len(te), "chance_accuracy": chance_accuracy(y_te),
        "classes_without_references": [images.classes[c] for c in sorted(set(range(n_classes)) - set(y_tr))],
        "config": {**asdict(cfg), "diffusion": asdict(cfg.diffusion) if cfg.diffusion else None},
    }
    results["prototypes"] = prototype_episodes(z_tr, y_tr, z_te, y_te, n_classes, cfg.shots, cfg.episodes, cfg.seed)
    proto_all = prototype_predict(z_tr, y_tr, z_te, n_classes)
    knn = knn_predict(z_tr, y_tr, z_te, n_classes, cfg.knn_k, cfg.knn_temperature)
    results["knn"] = {"k": min(cfg.knn_k, len(tr)), "temperature": cfg.knn_temperature,
                      **{name: classification_metrics(y_te, p) for name, p in knn.items()}}

    dc = None
    if cfg.diffusion is None:
        results["diffusion_classifier"] = {"skipped": "disabled"}
    elif not isinstance(backbone, RCDiTBackbone):
        results["diffusion_classifier"] = {
            "skipped": f"the diffusion classifier needs a denoiser conditioned on the representation (an RC-DiT); "
                       f"a {backbone.kind} backbone has none"}
    else:
        dcfg = cfg.diffusion
        sub = np.arange(len(te))
        if dcfg.max_images and dcfg.max_images < len(te):
            sub = np.sort(np.random.default_rng(stable_seed("dc-images", cfg.seed)).choice(
                len(te), dcfg.max_images, replace=False))
        r_all = raw if block == ENCODER and t == 0 else features(ENCODER, 0)
        dc = run_diffusion_classifier(backbone, images.images[te[sub]], r_all[tr], y_tr, n_classes, dcfg,
                                      seed=cfg.seed, precision=cfg.precision, progress=progress)
        dc["subset"] = sub
        results["diffusion_classifier"] = {
            **classification_metrics(y_te[sub], dc["pred"]), "n_images": len(sub),
            "calls_per_image": dc["calls_per_image"], "exhaustive_calls_per_image": dc["exhaustive_calls_per_image"],
            "n_candidates": dc["n_candidates"], "seconds": dc["seconds"], "schedule": [list(s) for s in dcfg.schedule],
            "t_range": dc["t_range"], "condition": dcfg.condition,
            "prototypes_all_same_images": classification_metrics(y_te[sub], proto_all[sub]),
            "knn_same_images": classification_metrics(y_te[sub], knn["weighted"][sub])}

    if cfg.positive is not None:
        results["binary"] = binary_task(images.classes, cfg.positive, z_tr, y_tr, z_te, y_te, proto_all, cfg, dc)
    write_json(out / "zeroshot.json", results)
    (out / "zeroshot.md").write_text(zeroshot_report(results))
    return results

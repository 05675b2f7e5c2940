"""Classify images with a bundle: prediction rows (top-3 labels, calibrated probabilities, the unknown flag).

From Python, in three lines::

    from diffprobe import ClassifierBundle
    from diffprobe.evaluate.predict import predict_paths
    rows = predict_paths(ClassifierBundle.load("run/bundle"), ["a.jpg", "b.png"])

A reading ensemble (``probe.ensemble``; ``probe.load_bundle`` opens either) is used the same way.

Each row is a dict: ``path``, ``label`` and ``probability`` (the most probable class and its
calibrated probability), ``top2_label``/``top2_probability``, ``top3_label``/``top3_probability``,
and ``unknown`` (True when the image scores below the bundle's unknown threshold, i.e. looks
unlike every class the model knows; empty when the bundle has no threshold). Unreadable files
are left out of the rows (``classify_files`` returns them).

``kaggle_rows`` gives the layout of the 2015 National Data Science Bowl's submissions instead: one row per image
with its file name and the calibrated probability of every class, in the bundle's class order, so a result can be
scored with the competition's multi-class log loss.

The ``predict`` command (folders searched, the CSVs of predictions and per-sample abundances written, large
collections in resumable shards) is ``workflows.predict.predict_files``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import softmax
from tqdm.auto import tqdm

from ..probe.bundle import ClassifierBundle
from ..probe.ensemble import ReadingEnsemble
from .unknown import flag_unknown

TOP_K = 3


def classify_files(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], *, batch_size: int = 256,
                   size_scale: float = 1.0, progress: bool = True,
                   bar: tqdm | None = None) -> tuple[list[int], np.ndarray, list[tuple[str, str]]]:
    """Read, preprocess and classify files in batches (object sizes times ``size_scale``); ``bar``: a progress
    bar to advance instead of a new one.

    Returns (indices of the readable files, their logits (N_ok, C), [(path, reason)] of the others).
    """
    ok, logits, skipped = [], [], []
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(paths), desc="classifying", unit="img", disable=not progress, mininterval=1.0)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images, meta, ok_chunk, skipped_chunk = bundle.load_paths(chunk)
        if len(images):
            logits.append(bundle.logits(images, meta, size_scale=size_scale))
        ok += [start + i for i in ok_chunk]
        skipped += skipped_chunk
        bar.update(len(chunk))
    if own_bar:
        bar.close()
    z = np.concatenate(logits) if logits else np.zeros((0, len(bundle.classes)), np.float32)
    return ok, z, skipped


def prediction_rows(bundle: ClassifierBundle | ReadingEnsemble, paths: list, logits: np.ndarray) -> list[dict]:
    """One row per image: top-3 labels with calibrated probabilities and the unknown flag."""
    probs = softmax(logits / bundle.temperature, axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    flags = flag_unknown(logits, bundle.meta)
    rows = []
    for i, p in enumerate(paths):
        row = {"path": str(p)}
        for rank in range(TOP_K):
            prefix = "" if rank == 0 else f"top{rank + 1}_"
            has = rank < order.shape[1]
            row[f"{prefix}label"] = bundle.classes[order[i, rank]] if has else ""
            row[f"{prefix}probability"] = round(float(probs[i, order[i, rank]]), 6) if has else ""
        row["unknown"] = bool(flags[i]) if flags is not None else ""
        rows.append(row)
    return rows


def kaggle_rows(bundle: ClassifierBundle | ReadingEnsemble, paths: list, logits: np.ndarray) -> list[dict]:
    """The 2015 NDSB submission layout: one row per image, ``image`` (its file name), then the calibrated
    probability of each class, in the bundle's class order (columns named by the class names)."""
    probs = softmax(logits / bundle.temperature, axis=1)
    # 6 significant digits, not 6 decimals: a tiny probability must stay above 0 for the log loss.
    return [{"image": Path(p).name, **{c: f"{q:.6g}" for c, q in zip(bundle.classes, row, strict=True)}}
            for p, row in zip(paths, probs, strict=True)]


def resolve_size_scale(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], scale: float | str | None,
                       batch_size: int = 256, progress: bool = True) -> float:
    """``bundle.size_scale`` for files: with ``"auto"``, the measurements of every readable file are read
    first (decoding only, no model: a small share of the classification's time)."""
    if scale != "auto" or not bundle.uses_metadata:
        return bundle.size_scale(None, scale)
    metas = [bundle.load_paths(paths[s:s + batch_size])[1] for s in tqdm(
        range(0, len(paths), batch_size), desc="measuring sizes", unit="batch", disable=not progress)]
    return bundle.size_scale(np.concatenate([m for m in metas if len(m)] or [np.zeros((0, 1))]), "auto")


def predict_paths(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], *, batch_size: int = 256,
                  progress: bool = False) -> list[dict]:
    """Prediction rows for the readable files among ``paths`` (see the module docstring)."""
    paths = list(paths)
    ok, logits, _ = classify_files(bundle, paths, batch_size=batch_size, progress=progress)
    return prediction_rows(bundle, [paths[i] for i in ok], logits)

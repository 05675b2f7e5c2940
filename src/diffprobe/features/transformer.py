"""Frozen diffusion features as a scikit-learn transformer.

::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from diffprobe.features import DiffusionFeatures

    clf = make_pipeline(DiffusionFeatures(model="runs/ndsb/ddpm", pairs=[("up1", 10)]),
                        LogisticRegression(max_iter=1000))
    clf.fit(train_paths, train_labels)
    clf.predict(["crop1.png"])

``fit`` loads the backbone and learns nothing; ``transform`` reads images (file paths, or uint8 arrays
already preprocessed to the model's size) and returns their features, float32 (N, D): every
(block, timestep) pair of ``pairs`` in order, pooled as ``pooling`` says, averaged over ``views``
flips / turns and ``n_noise`` noise draws. They are the features ``diffprobe features`` stores and a
bundle reads for the same settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..backbones.base import Backbone, load_backbone
from ..config.features import ExtractConfig
from ..data.dataset import decode, model_preprocess
from ..data.io import ImageReadError
from ..data.preprocess import Preprocess
from ..utils import DiffprobeError, read_json
from .extract import FeatureSpec, view_features

__all__ = ["DiffusionFeatures"]


class DiffusionFeatures(TransformerMixin, BaseEstimator):
    """Frozen features of a pretrained backbone, for scikit-learn pipelines.

    Parameters are stored unchanged and checked by ``fit`` (scikit-learn's convention, so ``clone``,
    ``get_params`` / ``set_params`` and grid searches over them work).

    Args:
        model: a backbone folder (a ``diffprobe pretrain`` run, a baseline or RC-DiT folder) or a
            classifier bundle folder (its ``backbone/`` and its preprocessing are used).
        pairs: the (block, timestep) pairs to read, in output order, e.g. ``[("up1", 10)]``; blocks are
            named ``down0..``, ``mid``, ``up0..`` (non-diffusion backbones use timestep 0).
        pooling: avg | max | avgmax | grid2 | grid4 | grid8 (``FeatureSpec``).
        views: average over 1, 2, 4 or 8 flips / quarter turns of each image.
        n_noise: average over this many noise draws per image and timestep.
        seed: global seed of the (per-image, deterministic) noise.
        precision: auto | fp32 | bf16 for the forward pass.
        batch_size: images per forward pass.
        device: a torch device name (``"cpu"``, ``"cuda"``); None picks the GPU where there is one.

    Attributes set by ``fit``: ``backbone_`` (the loaded ``Backbone``), ``preprocess_`` (how paths are
    decoded), ``spec_`` (the ``FeatureSpec``), ``pairs_`` (list of (block, int timestep)),
    ``feature_dims_`` (the width of each pair's features) and ``n_features_out_`` (their sum).
    """

    def __init__(self, model: str | Path | None = None, pairs: Sequence[tuple[str, int]] = (("up1", 10),),
                 pooling: str = "avg", views: int = 1, n_noise: int = 1, seed: int = 0, precision: str = "auto",
                 batch_size: int = 64, device: str | None = None):
        self.model = model
        self.pairs = pairs
        self.pooling = pooling
        self.views = views
        self.n_noise = n_noise
        self.seed = seed
        self.precision = precision
        self.batch_size = batch_size
        self.device = device

    # ---- fitting: load and check, learn nothing ------------------------------------------------------
    def fit(self, X=None, y=None):  # noqa: N803 - scikit-learn's spelling
        """Load the backbone and check the parameters; ``X`` and ``y`` are not used. Returns self."""
        if self.model is None:
            raise DiffprobeError("DiffusionFeatures needs model=PATH: a backbone folder ('diffprobe pretrain' "
                                 "output) or a classifier bundle folder")
        pairs = _check_pairs(self.pairs)
        ExtractConfig(batch_size=self.batch_size)  # refused, naming the setting, if out of bounds
        spec = FeatureSpec(timesteps=tuple(sorted({t for _, t in pairs})),
                           blocks=tuple(dict.fromkeys(b for b, _ in pairs)), pooling=self.pooling,
                           n_noise=self.n_noise, views=self.views, seed=self.seed, precision=self.precision)
        backbone_dir, preprocess = _open_model(Path(self.model))
        backbone = load_backbone(backbone_dir, device=torch.device(self.device) if self.device else None)
        known = backbone.block_names()
        missing = [b for b in spec.blocks if b not in known]
        if missing:
            raise DiffprobeError(f"{backbone_dir}: no block {', '.join(map(repr, missing))}; its blocks are "
                                 f"{', '.join(known)}")
        self.backbone_: Backbone = backbone
        self.preprocess_: Preprocess = preprocess
        self.spec_ = spec
        self.pairs_ = pairs
        # The width of each pair's features, from one blank image (a forward pass per timestep).
        probe = view_features(backbone, np.zeros((1, backbone.image_size, backbone.image_size), np.uint8), spec)
        self.feature_dims_ = [int(probe[p].shape[1]) for p in pairs]
        self.n_features_out_ = int(sum(self.feature_dims_))
        return self

    # ---- features ------------------------------------------------------------------------------------
    def transform(self, X):  # noqa: N803
        """Image file paths (a list), or uint8 arrays preprocessed to the model's size ((N, S, S), or a
        list of (S, S)) -> float32 (N, D) features, one row per input in order."""
        check_is_fitted(self, "backbone_")
        images = self._images(X)
        out = []
        for i in range(0, len(images), self.batch_size):
            f = view_features(self.backbone_, images[i : i + self.batch_size], self.spec_)
            out.append(np.concatenate([f[p] for p in self.pairs_], axis=1))
        if not out:
            return np.zeros((0, self.n_features_out_), np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)

    def get_feature_names_out(self, input_features=None):
        """``<block>_t<timestep>_<k>`` for the k-th feature of each pair, e.g. ``up1_t10_0``."""
        check_is_fitted(self, "backbone_")
        return np.asarray([f"{b}_t{t}_{k}" for (b, t), d in zip(self.pairs_, self.feature_dims_, strict=True)
                           for k in range(d)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Inputs are images (file paths or (N, S, S) arrays), not a table of numbers.
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.input_tags.string = True
        tags.transformer_tags.preserves_dtype = []  # always float32
        return tags

    def _images(self, X) -> np.ndarray:
        s = self.backbone_.image_size
        if isinstance(X, (str, Path)):
            raise DiffprobeError("transform takes a list of images; wrap a single path in a list")
        if isinstance(X, np.ndarray) and X.dtype.kind not in "OUS":
            images = X
        else:
            items = list(X)
            if items and all(isinstance(x, (str, Path)) for x in items):
                return self._decode(items)
            if any(isinstance(x, (str, Path)) for x in items):
                raise DiffprobeError("transform takes either file paths or image arrays, not a mix")
            images = np.asarray(items) if items else np.zeros((0, s, s), np.uint8)
        if images.ndim != 3 or images.shape[1:] != (s, s) or images.dtype != np.uint8:
            raise DiffprobeError(f"images must be file paths or preprocessed uint8 arrays of shape (N, {s}, {s}); "
                                 f"got {images.dtype} {images.shape}. Pass the file paths to have them "
                                 f"preprocessed as the model was trained")
        return np.ascontiguousarray(images)

    def _decode(self, paths: list) -> np.ndarray:
        images = []
        for p in paths:
            try:
                images.append(decode(p, self.preprocess_)[0])
            except ImageReadError as e:
                raise DiffprobeError(f"{p}: {e.reason}") from None
        return np.stack(images)


def _check_pairs(pairs) -> list[tuple[str, int]]:
    try:
        out = [(b, t) for b, t in pairs]
    except (TypeError, ValueError):
        raise DiffprobeError(f"pairs must be a list of (block, timestep), e.g. [('up1', 10)]; got {pairs!r}") from None
    if not out or not all(isinstance(b, str) and isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                          for b, t in out):
        raise DiffprobeError(f"pairs must be a non-empty list of (block name, integer timestep); got {pairs!r}")
    if len(set(out)) != len(out):
        raise DiffprobeError(f"pairs lists a pair twice: {pairs!r}")
    return [(b, int(t)) for b, t in out]


def _open_model(path: Path) -> tuple[Path, Preprocess]:
    """A backbone folder or a bundle folder -> (backbone folder, the preprocessing of its inputs)."""
    if (path / "bundle.json").is_file() and (path / "backbone").is_dir():
        return path / "backbone", Preprocess.from_dict(read_json(path / "bundle.json")["preprocess"])
    if not path.is_dir():
        raise DiffprobeError(f"{path}: no such model folder; pass a 'diffprobe pretrain' run or a bundle folder")
    return path, model_preprocess(path)

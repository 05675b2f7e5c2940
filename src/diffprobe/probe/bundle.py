"""The classifier bundle: a frozen backbone, the (block, timestep) pairs it reads, the head on them,
class names, preprocessing and calibration, in one directory that ``evaluate`` and ``predict`` load.

Layout::

    bundle/
      bundle.json          classes, pairs, image size, feature spec, metadata, head kind, temperature, metrics
      probe.safetensors    the head: linear (weight (D, C), bias, mean, std) or MLP (``probe.mlp.MLPHead``)
      backbone/            the frozen backbone directory (backbone.json + safetensors weights)

``bundle.json``'s schema, its formats and their migration are ``probe.bundle_json``'s: format 1 bundles (one
pair, a linear head) load as format 2, which adds ``pairs`` (several pairs, concatenated in that order),
``metadata`` (the object measurements of ``data.measurements`` appended to the features) and ``head`` (``linear`` or
``mlp``). Format 3 is a reading ensemble (``probe.ensemble``): member bundles that share one ``backbone/``
beside them. A member folder loads here as a bundle of its own (its backbone is the ensemble's); the ensemble
does not.

Weights are read with safetensors only; ``bundle.json`` is validated before use.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.special import softmax
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..backbones.base import Backbone, load_backbone
from ..data.dataset import ImageArray, decode, load_split_images
from ..data.io import ImageReadError, to_grey
from ..data.manifest import Manifest
from ..data.measurements import METADATA_NAMES, estimate_scale, measure_object, rescale_sizes, select_metadata
from ..data.preprocess import Preprocess, flattened, model_input
from ..features.extract import FeatureSpec, view_features
from ..utils import DiffprobeError, read_json, resolve_precision, write_json
from .bundle_json import BUNDLE_FORMAT, ENSEMBLE_FORMAT, BundleJSON, check_description, migrated
from .linear import LinearHead
from .mlp import MLPHead



Head = LinearHead | MLPHead


@dataclass
class ClassifierBundle:
    """A ready-to-use classifier.

    ``predict_proba(inputs)`` / ``predict(inputs)``: image files, PIL images or numpy arrays of any size
    (uint8, or float in [0, 1]; greyscale or RGB), preprocessed as ``diffprobe predict`` does ->
    (N, C) calibrated probabilities / N class names. ``logits(images, meta)`` is the same on arrays that
    are already preprocessed (uint8 (N, S, S), e.g. an ``ImageArray``'s ``images`` and ``meta``).
    """

    path: Path
    meta: dict
    head: Head
    backbone: Backbone = field(repr=False)
    precision: str = "auto"  # of the forward pass at inference (utils.resolve_precision)
    # Test-time views read per image (flips / quarter turns, features averaged), in place of the bundle's own:
    # a one-view bundle read at 8 views, or the reverse, for users who trade speed for the last point.
    views: int | None = None

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess.from_dict(self.meta["preprocess"])

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(b, int(t)) for b, t in self.meta["pairs"]]

    @property
    def uses_metadata(self) -> bool:
        return bool(self.meta.get("metadata"))

    @property
    def metadata_names(self) -> list[str]:
        """The object measurements the head reads after the features (``data.measurements``), in order."""
        return list(self.meta.get("metadata") or [])

    # ---- writing -----------------------------------------------------------------------------
    @staticmethod
    def save(path: str | Path, *, model_dir: str | Path, head: Head, meta: dict) -> Path:
        """Write a bundle: copy the backbone, the head's tensors and ``bundle.json`` (validated).

        ``meta`` needs classes, image_size, preprocess, feature_spec, metrics and either ``pairs`` or
        ``block`` + ``timestep``; ``metadata`` (names, or empty) and the head kind are filled in here.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        load_backbone(model_dir, device=torch.device("cpu")).copy_to(path / "backbone")
        save_file(head.tensors(), path / "probe.safetensors")
        pairs = meta.get("pairs") or [[meta["block"], meta["timestep"]]]
        meta = {"format": BUNDLE_FORMAT, "temperature": 1.0, "metadata": [], **meta,
                "pairs": [[b, int(t)] for b, t in pairs], "block": pairs[0][0], "timestep": int(pairs[0][1]),
                "head": "mlp" if isinstance(head, MLPHead) else "linear"}
        if isinstance(head, MLPHead):
            meta["head_config"] = head.config
        _validate(meta, path / "bundle.json")
        write_json(path / "bundle.json", meta)
        return path

    # ---- reading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: torch.device | None = None,
             precision: str = "auto", views: int | None = None) -> "ClassifierBundle":
        """Open a bundle; ``precision`` (auto | fp32 | bf16) is the one its forward pass runs in here.
        ``feature_spec.precision`` in ``bundle.json`` records what its head was fitted on. ``views``: test-time
        views read per image in place of the bundle's own (None: its own)."""
        resolve_precision(precision)  # refuse an unknown name before loading anything
        path = Path(path)
        meta, head = cls.load_head(path)
        backbone = load_backbone(backbone_dir(path), device=device)
        if backbone.image_size != meta["image_size"]:
            raise DiffprobeError(f"{path}: bundle.json says {meta['image_size']} px but its backbone was trained on "
                                 f"{backbone.image_size} px; the bundle is inconsistent, re-create it")
        return cls(path, meta, head, backbone, precision, views)

    @staticmethod
    def load_head(path: str | Path) -> tuple[dict, LinearHead | MLPHead]:
        """``bundle.json`` and the head of the bundle at ``path``, checked as ``load`` checks them, without the
        backbone (for work on cached features, such as the app's retrain)."""
        path = Path(path)
        if not (path / "bundle.json").is_file():
            raise DiffprobeError(f"{path}: not a classifier bundle (bundle.json missing); pass the bundle/ folder "
                                 f"written by 'diffprobe probe'")
        meta = migrated(read_json(path / "bundle.json"))
        if isinstance(meta, dict) and meta.get("format") == ENSEMBLE_FORMAT:
            raise not_single_bundle(path, meta.get("members") or [])
        _validate(meta, path / "bundle.json")
        try:
            t = load_file(path / "probe.safetensors")
        except Exception as e:  # noqa: BLE001
            raise DiffprobeError(f"{path / 'probe.safetensors'}: unreadable ({e}); re-create the bundle") from None
        if meta.get("head", "linear") == "mlp":
            head = MLPHead.from_tensors(t, meta.get("head_config"))
            outputs = head.n_classes
        else:
            head = LinearHead(*(t[k].float().numpy() for k in ("weight", "bias", "mean", "std")))
            outputs = head.weight.shape[1]
        if outputs != len(meta["classes"]):
            raise DiffprobeError(f"{path}: the head has {outputs} outputs but bundle.json names "
                                 f"{len(meta['classes'])} classes; the bundle is inconsistent, re-create it")
        return meta, head

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: torch.device | None = None, precision: str = "auto",
                        *, revision: str | None = None, local_files_only: bool = False, token: str | bool | None = None,
                        cache_dir: str | Path | None = None) -> "ClassifierBundle":
        """``load`` (the diffusers / Hugging Face spelling), from a local folder or a Hugging Face Hub repo.

        A ``name_or_path`` that is an existing folder, or a ``Path``, is loaded as a folder. Otherwise a string
        that is a valid Hub repo id (``"org/name"``) is resolved with ``huggingface_hub.snapshot_download``
        (``revision``: a branch, tag or commit; ``token``; ``cache_dir``, default the Hub cache) into the
        local cache and loaded from there. ``local_files_only=True`` (or ``HF_HUB_OFFLINE=1``) uses only what
        is cached. Pickled checkpoints in the repo (``.bin``, ``.pt``, ``.ckpt``, ...) are not downloaded;
        weights are read from safetensors only, as for a folder. A repo id that cannot be resolved raises a
        ``DiffprobeError`` naming both the missing folder and the Hub's reason.
        """
        return cls.load(pretrained_folder(name_or_path, revision=revision, local_files_only=local_files_only,
                                          token=token, cache_dir=cache_dir), device, precision)

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                    commit_message: str = "Upload diffprobe classifier bundle", revision: str | None = None):
        """Upload this bundle, as ``save_pretrained`` writes it (``bundle.json``, ``probe.safetensors``,
        ``backbone/``), to the Hugging Face Hub model repo ``repo_id``, created if missing (``private`` only
        applies then). ``token``: a Hub token (default: the logged-in one). Returns the Hub's ``CommitInfo``
        (its ``commit_url`` names the commit). ``from_pretrained(repo_id)`` loads it back."""
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory(prefix="diffprobe-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "bundle")
            api.create_repo(repo_id, token=token, private=private, exist_ok=True)
            return api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                     token=token, revision=revision)

    def save_pretrained(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write this bundle, as it is in memory, to a new folder that ``from_pretrained`` loads back with
        identical predictions: ``bundle.json`` (``meta``, so a changed temperature or threshold is kept),
        ``probe.safetensors`` (the head, in the dtype it was stored in: an fp16 head stays fp16) and
        ``backbone/`` (copied as stored). Other files beside the source bundle (a model card, a split, test
        reports) are not copied; ``diffprobe export`` writes a complete model folder.

        The folder is written beside ``path`` and renamed into place when complete. An existing folder
        that is not empty is refused unless ``overwrite``; the bundle's own folder (or one holding it)
        always is. Returns ``path``.
        """
        _validate(self.meta, Path(path) / "bundle.json")
        return write_new_folder(path, self.path, self.write_files, overwrite=overwrite)

    def write_files(self, folder: Path, *, backbone: bool = True) -> None:
        """Write this bundle as it is in memory into the existing ``folder``: ``bundle.json`` (``meta``),
        ``probe.safetensors`` (the head, in the dtype it was stored in) and, with ``backbone``, ``backbone/``."""
        if backbone:
            self.backbone.copy_to(folder / "backbone")
        dtype = _stored_dtype(self.path / "probe.safetensors")
        save_file({k: v.to(dtype) if v.is_floating_point() else v for k, v in self.head.tensors().items()},
                  folder / "probe.safetensors")
        write_json(folder / "bundle.json", self.meta)

    def update_json(self, fields: dict) -> None:
        """Merge ``fields`` into the bundle's ``bundle.json`` (validated, rewritten atomically) and ``meta``."""
        merge_bundle_json(self.path, self.meta, fields, _validate)

    def feature_spec(self) -> FeatureSpec:
        """What the backbone computes: every pair's block and timestep, in this bundle's precision."""
        spec = FeatureSpec.from_dict(dict(self.meta["feature_spec"])).to_dict()
        pairs = self.pairs
        spec.update(timesteps=sorted({t for _, t in pairs}), blocks=list(dict.fromkeys(b for b, _ in pairs)),
                    precision=self.precision, **({"views": self.views} if self.views else {}))
        return FeatureSpec.from_dict(spec)

    def size_scale(self, meta: np.ndarray | None, scale: float | str | None) -> float:
        """The pixel-scale factor to apply to the object sizes (``data.measurements.rescale_sizes``): ``None`` or 1
        (sizes as measured), a number (the training instrument's pixels per unit length over the new one's), or
        ``"auto"``: estimated from ``meta`` (N, K), the measurements of the images to classify, against the
        training images' medians (``metadata_medians`` in bundle.json). 1.0 for a bundle that reads no sizes."""
        if scale is None or not self.uses_metadata:
            return 1.0
        if scale == "auto":
            medians = self.meta.get("metadata_medians")
            if medians is None:
                raise DiffprobeError(f"{self.path}: bundle.json holds no metadata_medians (made before they were "
                                     f"recorded), so the pixel scale cannot be estimated; pass it as a number")
            if meta is None or len(meta) == 0:
                raise DiffprobeError("estimating the pixel scale needs the images' measurements")
            names = self.metadata_names
            return estimate_scale(select_metadata(meta, names), np.asarray(medians), names)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise DiffprobeError(f"the size scale must be 'auto' or a positive number, got {scale!r}")
        return float(scale)

    def features(self, images: np.ndarray, meta: np.ndarray | None = None, batch_size: int = 256,
                 progress: bool = False, size_scale: float = 1.0) -> np.ndarray:
        """uint8 (N, S, S) preprocessed images (and their object measurements, if the bundle reads them: (N,
        len(METADATA_NAMES)) as measured, or (N, K) the bundle's own columns) -> (N, D) the head's input: every
        pair's features in order, then the bundle's measurements (sizes multiplied by ``size_scale``, see
        ``size_scale()``)."""
        images = np.asarray(images)
        s = self.meta["image_size"]
        if images.ndim != 3 or images.shape[1:] != (s, s) or images.dtype != np.uint8:
            raise DiffprobeError(f"images must be preprocessed uint8 arrays of shape (N, {s}, {s}); got "
                                 f"{images.dtype} {images.shape}. Pass raw images to predict_proba(), which "
                                 f"preprocesses them")
        if self.uses_metadata and (meta is None or len(meta) != len(images)):
            raise DiffprobeError(f"{self.path}: this bundle reads the object metadata ({len(self.metadata_names)} "
                                 f"measurements) beside the images; pass meta (N, {len(METADATA_NAMES)}) as "
                                 f"prepare() returns it, or use predict_proba()")
        if self.uses_metadata:
            try:
                meta = select_metadata(meta, self.metadata_names)
            except ValueError as e:
                raise DiffprobeError(f"{self.path}: {e}") from None
            if size_scale != 1.0:
                meta = rescale_sizes(meta, size_scale, self.metadata_names)
        spec, pairs = self.feature_spec(), self.pairs
        out = []
        for i in tqdm(range(0, len(images), batch_size), disable=not progress, desc="classifying", unit="batch"):
            f = view_features(self.backbone, images[i : i + batch_size], spec)
            cols = [f[p] for p in pairs] + ([np.asarray(meta[i : i + batch_size], np.float32)]
                                             if self.uses_metadata else [])
            out.append(np.concatenate(cols, axis=1))
        return np.concatenate(out) if out else np.zeros((0, len(self.head.mean)), np.float32)

    def logits(self, images: np.ndarray, meta: np.ndarray | None = None, **kw) -> np.ndarray:
        return self.head.logits(self.features(images, meta, **kw))

    # ---- raw inputs: files, PIL images, arrays of any size -------------------------------------------
    def prepare(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """Paths, PIL images or arrays (one 2-D / 3-D array or a list of them; uint8, or float in [0, 1])
        -> (uint8 (N, S, S) model inputs, float32 (N, K) object metadata). Unreadable files raise."""
        if isinstance(inputs, (str, Path, Image.Image)) or (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
            inputs = [inputs]
        pre, images, metas = self.preprocess, [], []
        for k, x in enumerate(inputs):
            if isinstance(x, (str, Path)):
                try:
                    img, m = decode(x, pre)
                except ImageReadError as e:
                    raise DiffprobeError(f"{x}: {e.reason}") from None
            else:
                flat, settings = flattened(_as_grey(x, k), pre)
                img, m = model_input(flat, settings), measure_object(flat, settings)
            images.append(img)
            metas.append(m)
        s = self.meta["image_size"]
        if not images:
            return np.zeros((0, s, s), np.uint8), np.zeros((0, len(METADATA_NAMES)), np.float32)
        return np.stack(images), np.stack(metas)

    def predict_proba(self, inputs, **kw) -> np.ndarray:
        """Calibrated probabilities (temperature-scaled softmax), (N, C), of raw inputs (see ``prepare``)."""
        return softmax(self.logits(*self.prepare(inputs), **kw) / self.temperature, axis=1)

    def predict(self, inputs, **kw) -> list[str]:
        """The most probable class name of each input."""
        return [self.classes[i] for i in self.predict_proba(inputs, **kw).argmax(1)]

    def load_paths(self, paths: list[str | Path]) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[str, str]]]:
        """Read and preprocess files: (images, their metadata, indices of the readable ones, [(path, reason)])."""
        pre = self.preprocess
        imgs, metas, ok, skipped = [], [], [], []
        for i, p in enumerate(paths):
            try:
                img, m = decode(p, pre)
            except ImageReadError as e:
                skipped.append((str(p), e.reason))
                continue
            imgs.append(img)
            metas.append(m)
            ok.append(i)
        s = self.meta["image_size"]
        if not imgs:
            return np.zeros((0, s, s), np.uint8), np.zeros((0, len(METADATA_NAMES)), np.float32), ok, skipped
        return np.stack(imgs), np.stack(metas), ok, skipped

    def read_split(self, manifest: str | Path | Manifest, *, report_dir: str | Path | None = None,
                   classes: list[str] | None = None, progress: bool = True) -> ImageArray:
        """The images of ``manifest`` as this bundle reads them (``data.dataset.load_split_images``: decoded once
        and cached; unreadable files skipped and, with ``report_dir``, listed in its ``skipped.csv``)."""
        return load_split_images(manifest, self.preprocess, report_dir=report_dir, classes=classes, progress=progress)


# Pickle-based checkpoint formats: never fetched from the Hub (bundles hold safetensors only).
_PICKLED = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle", "*.joblib", "*.npy", "*.npz"]


def _is_repo_id(name: str | Path) -> bool:
    """Whether a string can name a Hugging Face Hub repo (``name`` or ``org/name``)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    name = str(name)
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _snapshot(repo_id: str, **kw) -> Path:
    """The local folder of a Hub repo's snapshot (downloaded if allowed and needed), or a DiffprobeError
    naming both places looked in."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, ignore_patterns=_PICKLED, **kw))
    except Exception as e:  # noqa: BLE001 - offline, not found, gated, bad revision: all reported the same way
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        raise DiffprobeError(f"{repo_id}: no folder {repo_id!r} here, and the Hugging Face Hub could not provide "
                             f"it ({reason}); pass an existing bundle folder or a Hub repo id that holds a "
                             f"bundle") from None


def merge_bundle_json(folder: Path, meta: dict, fields: dict, validate) -> None:
    """Merge ``fields`` into ``folder/bundle.json``, checked by ``validate(meta, path)`` before it is rewritten
    atomically, and into the loaded ``meta``: the one write path of a bundle's or an ensemble's settings."""
    path = folder / "bundle.json"
    merged = {**read_json(path), **fields}
    validate(merged, path)
    write_json(path, merged)
    meta.update(fields)


def write_new_folder(path: str | Path, source: Path, write: Callable[[Path], None], *, overwrite: bool) -> Path:
    """``save_pretrained``'s writing: ``write(tmp)`` fills a folder beside ``path`` that is renamed into place
    when complete. An existing folder that is not empty is refused unless ``overwrite``; ``source`` (the folder
    the bundle was loaded from), or one holding it, always is. Returns ``path``."""
    out = Path(path)
    src = Path(source).resolve()
    if out.resolve() == src or out.resolve() in src.parents:
        raise DiffprobeError(f"{out}: this is (or holds) the folder the bundle was loaded from; save it to "
                             f"a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DiffprobeError(f"{out}: already exists and is not empty; pass overwrite=True to replace it")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def backbone_dir(path: str | Path) -> Path:
    """The backbone folder of the bundle at ``path``: its own ``backbone/``, or, for a member of a reading
    ensemble (a folder without one, named in the ``members`` of a format-3 ``bundle.json`` beside it), the
    ensemble's shared ``backbone/``."""
    path = Path(path)
    own, parent = path / "backbone", path.resolve().parent
    if not own.is_dir() and (parent / "bundle.json").is_file():
        meta = read_json(parent / "bundle.json")
        if isinstance(meta, dict) and meta.get("format") == ENSEMBLE_FORMAT and path.resolve().name in \
                meta.get("members", []):
            return parent / "backbone"
    return own


def pretrained_folder(name_or_path: str | Path, *, revision: str | None = None, local_files_only: bool = False,
                      token: str | bool | None = None, cache_dir: str | Path | None = None) -> Path:
    """The local folder of ``name_or_path`` (``ClassifierBundle.from_pretrained``'s rules): an existing folder or a
    ``Path`` as it is, else a Hugging Face Hub repo id resolved into the local cache."""
    if isinstance(name_or_path, Path) or Path(name_or_path).exists() or not _is_repo_id(name_or_path):
        return Path(name_or_path)
    return _snapshot(str(name_or_path), revision=revision, local_files_only=local_files_only, token=token,
                     cache_dir=cache_dir)


def not_single_bundle(path: Path, members: list[str]) -> DiffprobeError:
    """The error for a reading ensemble given where one classifier bundle (its features, its head) is needed."""
    example = f"e.g. {Path(path) / members[0]}" if members else "one of its member folders"
    return DiffprobeError(f"{path}: a reading ensemble (members {', '.join(members) or 'none'}), not one classifier "
                          f"bundle; this needs one bundle's features and head: pass one member folder instead "
                          f"({example}). predict, evaluate, shift, calibrate and export read the ensemble itself; "
                          f"from Python, diffprobe.load_bundle opens either")


def _stored_dtype(weights: Path) -> torch.dtype:
    """The floating dtype a head was stored in (fp16 after ``export --fp16-head``); fp32 if unknown."""
    try:
        with safe_open(weights, "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    except Exception:  # noqa: BLE001 - the source file may be gone; the head in memory is what counts
        return torch.float32
    return torch.float16 if dtypes == {torch.float16} else torch.float32


def _as_grey(x, k: int) -> np.ndarray:
    """A PIL image or array -> float32 greyscale (H, W) in [0, 1], with a clear error for anything else."""
    if isinstance(x, Image.Image):
        return to_grey(x)
    if not isinstance(x, np.ndarray):
        raise DiffprobeError(f"input {k}: expected a file path, a PIL image or a numpy array, got {type(x).__name__}")
    a = x
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return to_grey(Image.fromarray(a.astype(np.uint8) if a.dtype == np.uint8 else
                                              np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)))
    if a.ndim != 2 or min(a.shape) < 2:
        raise DiffprobeError(f"input {k}: expected one image of shape (H, W) or (H, W, 3), got {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise DiffprobeError(f"input {k}: float images must hold values in [0, 1] (got {a.min():.3g} to "
                                 f"{a.max():.3g}); divide by 255 for 8-bit data")
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    raise DiffprobeError(f"input {k}: unsupported array type {a.dtype}; use uint8, uint16 or float in [0, 1]")


def _validate(meta: dict, where: Path) -> None:
    check_description(meta, BundleJSON, where)

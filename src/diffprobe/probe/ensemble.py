"""A reading ensemble: classifier bundles whose log-probabilities are averaged. They read one frozen backbone
several ways (e.g. each image cut to its organism and as framed), or each their own backbone (several networks
trained apart: a model ensemble). ``predict``, ``evaluate``, ``shift``, ``calibrate`` and ``export`` use it as they
use a ``ClassifierBundle``; ``load_bundle`` opens either.

Layout::

    ensemble/
      bundle.json     format 3: members (their folder names, in order), classes, image_size, temperature,
                      metrics (members: each member's own test metrics), and what 'diffprobe calibrate'
                      adds (unknown thresholds, val confusion, calibration)
      backbone/       the backbone of the first member, and of every member without one of its own
      crop/           a member: bundle.json + probe.safetensors, a classifier bundle without a backbone/ of
      frame/          its own (``ClassifierBundle.load("ensemble/crop")`` opens it alone, on the shared one);
                      a member trained on another backbone keeps it in its folder (``crop/backbone/``)

Logits (N, C): the mean over members of ``log_softmax(member logits)``, the log of the geometric mean of
their probabilities up to a constant per image; the ensemble's ``temperature`` then applies as a bundle's
does (softmax(logits / T)); the members' temperatures are not used. Each member reads its own
preprocessing, pairs and metadata, so the ensemble's preprocessed inputs stack the M readings on axis 1:
images uint8 (N, M, S, S), object metadata float32 (N, M, K). It costs one set of backbone forwards per
member: twice a bundle's prediction time for two.

``build_ensemble`` (``diffprobe ensemble``) makes one from bundles of one class list and image size; its
temperature is 1, its test metrics null and it has no unknown threshold until ``diffprobe calibrate`` (val)
and ``diffprobe export --split`` (test) measure them. The app and ``diffprobe adapt`` work on one bundle's
features and head: they take a member folder.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.special import log_softmax, softmax

from ..backbones.base import Backbone, load_backbone
from ..data.dataset import ImageArray, decode
from ..data.io import ImageReadError
from ..data.manifest import Manifest
from ..data.measurements import METADATA_NAMES
from ..utils import DiffprobeError, atomic_dir, hash_json, read_json, resolve_precision, sha256_file, write_json
from .bundle import ClassifierBundle, _validate, backbone_dir, merge_bundle_json, pretrained_folder, write_new_folder
from .bundle_json import ENSEMBLE_FORMAT, EnsembleJSON, check_description
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a member's folder name


@dataclass
class ReadingEnsemble:
    """Classifier bundles, each reading a shared backbone its own way or its own backbone, averaged (see the module
    docstring).

    ``predict_proba(inputs)`` / ``predict(inputs)``: as ``ClassifierBundle``'s. ``logits(images, meta)`` on
    inputs every member has preprocessed (uint8 (N, M, S, S), float32 (N, M, K): what ``prepare``,
    ``load_paths`` and ``read_split`` return). ``members``: the member bundles, in ``meta["members"]``'s order.
    """

    path: Path
    meta: dict
    members: list[ClassifierBundle]

    @property
    def names(self) -> list[str]:
        return self.meta["members"]

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])

    @property
    def backbone(self) -> Backbone:
        return self.members[0].backbone

    @property
    def precision(self) -> str:
        return self.members[0].precision

    @property
    def uses_metadata(self) -> bool:
        return any(m.uses_metadata for m in self.members)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | None = None, precision: str = "auto",
             views: int | None = None) -> ReadingEnsemble:
        """Open an ensemble folder: the shared backbone once, every member's head on it or on the member's own
        backbone (``precision`` and ``views`` as for a bundle)."""
        resolve_precision(precision)
        path = Path(path)
        meta = read_json(path / "bundle.json")
        _validate_ensemble(meta, path / "bundle.json")
        shared = load_backbone(path / "backbone", device=device)
        members = []
        for name in meta["members"]:
            own = path / name / "backbone"
            backbone = load_backbone(own, device=device) if own.is_dir() else shared
            if backbone.image_size != meta["image_size"]:
                raise DiffprobeError(f"{path}: bundle.json says {meta['image_size']} px but the backbone of {name}/ "
                                     f"was trained on {backbone.image_size} px; the ensemble is inconsistent, build it "
                                     f"again")
            member_meta, head = ClassifierBundle.load_head(path / name)
            if member_meta["classes"] != meta["classes"] or member_meta["image_size"] != meta["image_size"]:
                raise DiffprobeError(f"{path / name}: its classes or image size differ from the ensemble's "
                                     f"({path / 'bundle.json'}); build the ensemble again with 'diffprobe ensemble'")
            members.append(ClassifierBundle(path / name, member_meta, head, backbone, precision, views))
        return cls(path, meta, members)

    def save_pretrained(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write this ensemble, as it is in memory, to a new folder that ``load_bundle`` loads back with identical
        predictions: ``bundle.json`` (``meta``), the shared ``backbone/`` once, and each member's ``bundle.json`` and
        ``probe.safetensors`` (as ``ClassifierBundle.save_pretrained`` writes them, and with its rules on
        ``path``), with its own ``backbone/`` where it has one. Returns ``path``."""
        path = Path(path)
        _validate_ensemble(self.meta, path / "bundle.json")
        for name, member in zip(self.names, self.members, strict=True):
            _validate(member.meta, path / name / "bundle.json")

        def write(tmp: Path) -> None:
            self.backbone.copy_to(tmp / "backbone")
            for name, member in zip(self.names, self.members, strict=True):
                (tmp / name).mkdir()
                member.write_files(tmp / name, backbone=member.backbone is not self.backbone)
            write_json(tmp / "bundle.json", self.meta)

        return write_new_folder(path, self.path, write, overwrite=overwrite)

    def update_json(self, fields: dict) -> None:
        """Merge ``fields`` into the ensemble's ``bundle.json`` (validated, rewritten atomically) and ``meta``."""
        merge_bundle_json(self.path, self.meta, fields, _validate_ensemble)

    def size_scale(self, meta: np.ndarray | None, scale: float | str | None) -> float:
        """``ClassifierBundle.size_scale`` of the first member that reads object metadata, on its own
        measurements (column m of ``meta`` (N, M, K) is member m's); 1.0 when no member reads them."""
        k = next((k for k, m in enumerate(self.members) if m.uses_metadata), None)
        if k is None:
            return 1.0
        return self.members[k].size_scale(None if meta is None or len(meta) == 0 else np.asarray(meta)[:, k], scale)

    def logits(self, images: np.ndarray, meta: np.ndarray | None = None, **kw) -> np.ndarray:
        """uint8 (N, M, S, S) images and their float32 (N, M, K) metadata (axis 1: member m's reading) -> (N, C), the
        mean of the members' log-softmax. ``kw`` (batch_size, progress, size_scale) goes to every member."""
        images = np.asarray(images)
        s, n = self.meta["image_size"], len(self.members)
        if images.ndim != 4 or images.shape[1:] != (n, s, s) or images.dtype != np.uint8:
            raise DiffprobeError(f"{self.path}: an ensemble of {n} readings takes uint8 images of shape (N, {n}, {s}, "
                                 f"{s}), each member's preprocessing on axis 1; got {images.dtype} {images.shape}. "
                                 f"Pass raw images to predict_proba(), or read them with prepare() or load_paths()")
        meta = None if meta is None else np.asarray(meta)
        return np.mean([log_softmax(m.logits(images[:, k], None if meta is None else meta[:, k], **kw), axis=1)
                        for k, m in enumerate(self.members)], axis=0)

    def prepare(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """``ClassifierBundle.prepare`` of every member, stacked: (uint8 (N, M, S, S), float32 (N, M, K))."""
        if not isinstance(inputs, (str, Path, Image.Image, np.ndarray)):
            inputs = list(inputs)  # read once per member
        read = [m.prepare(inputs) for m in self.members]
        return np.stack([images for images, _ in read], 1), np.stack([meta for _, meta in read], 1)

    def predict_proba(self, inputs, **kw) -> np.ndarray:
        """Calibrated probabilities (temperature-scaled softmax), (N, C), of raw inputs (see ``prepare``)."""
        return softmax(self.logits(*self.prepare(inputs), **kw) / self.temperature, axis=1)

    def predict(self, inputs, **kw) -> list[str]:
        """The most probable class name of each input."""
        return [self.classes[i] for i in self.predict_proba(inputs, **kw).argmax(1)]

    def load_paths(self, paths: list[str | Path]) -> tuple[np.ndarray, np.ndarray, list[int], list[tuple[str, str]]]:
        """Read and preprocess files, each once per distinct preprocessing of the members (a model ensemble's
        members often share theirs): (images (N, M, S, S), their metadata (N, M, K), indices of the readable files,
        [(path, reason)] of the others)."""
        pres = [m.preprocess for m in self.members]
        distinct = list(dict.fromkeys(pres))
        imgs, metas, ok, skipped = [], [], [], []
        for i, p in enumerate(paths):
            try:
                decoded = {pre: decode(p, pre) for pre in distinct}
                read = [decoded[pre] for pre in pres]
            except ImageReadError as e:
                skipped.append((str(p), e.reason))
                continue
            imgs.append(np.stack([img for img, _ in read]))
            metas.append(np.stack([m for _, m in read]))
            ok.append(i)
        s, n = self.meta["image_size"], len(self.members)
        if not imgs:
            return np.zeros((0, n, s, s), np.uint8), np.zeros((0, n, len(METADATA_NAMES)), np.float32), ok, skipped
        return np.stack(imgs), np.stack(metas), ok, skipped

    def read_split(self, manifest: str | Path | Manifest, *, report_dir: str | Path | None = None,
                   classes: list[str] | None = None, progress: bool = True) -> ImageArray:
        """``ClassifierBundle.read_split`` of every member, stacked: ``images`` (N, M, S, S), ``meta`` (N, M, K);
        ``preprocess`` is the first member's."""
        arrays = [m.read_split(manifest, report_dir=report_dir, classes=classes, progress=progress)
                  for m in self.members]
        first = arrays[0]
        for name, a in zip(self.names[1:], arrays[1:], strict=True):
            if a.paths != first.paths:  # files fail when read, before any preprocessing: never expected
                raise DiffprobeError(f"{self.path / name}: its reading of {manifest} kept {len(a.paths)} files, "
                                     f"{self.names[0]}'s {len(first.paths)}; every reading must keep the same "
                                     f"files (please report this)")
        return replace(first, images=np.stack([a.images for a in arrays], 1), meta=np.stack([a.meta for a in arrays], 1),
                       fingerprint=hash_json([a.fingerprint for a in arrays]))


def is_ensemble(path: str | Path) -> bool:
    """Whether ``path`` holds a reading ensemble (a format-3 ``bundle.json``)."""
    f = Path(path) / "bundle.json"
    if not f.is_file():
        return False
    meta = read_json(f)
    return isinstance(meta, dict) and meta.get("format") == ENSEMBLE_FORMAT


def load_bundle(path: str | Path, device: torch.device | None = None, precision: str = "auto",
                views: int | None = None, **hub) -> ClassifierBundle | ReadingEnsemble:
    """The classifier in the folder ``path``, or in a Hugging Face Hub repo (``hub``: ``revision``,
    ``local_files_only``, ``token``, ``cache_dir``, as for ``ClassifierBundle.from_pretrained``): a
    ``ReadingEnsemble`` for an ensemble, else a ``ClassifierBundle``; ``views``: test-time views per image in place
    of the bundle's own (None: its own)."""
    path = pretrained_folder(path, **hub)
    if is_ensemble(path):
        return ReadingEnsemble.load(path, device, precision, views)
    return ClassifierBundle.load(path, device, precision, views)


def backbone_hash(folder: Path) -> str:
    """sha256 over a backbone folder's ``backbone.json`` and safetensors files (relative paths and contents)."""
    if not (folder / "backbone.json").is_file():
        raise DiffprobeError(f"{folder}: not a backbone directory (backbone.json missing); the bundle is "
                             f"incomplete, re-create it")
    h = hashlib.sha256()
    for f in [folder / "backbone.json", *sorted(folder.rglob("*.safetensors"))]:
        h.update(f"{f.relative_to(folder).as_posix()}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


# What 'diffprobe calibrate' fits on val, and an ensemble of refitted members takes from one of train-only members.
CALIBRATION_FIELDS = ("temperature", "unknown", "val_confusion", "calibration")


def build_ensemble(members: list[str | Path], out: str | Path, *, names: list[str] | None = None,
                   calibration_from: str | Path | None = None) -> Path:
    """Write the reading ensemble ``out`` (atomically; a new or empty folder) of the bundle folders ``members``:
    one copy of the first member's backbone, and each member's ``bundle.json`` and ``probe.safetensors`` in a folder
    named by ``names`` (default: ``crop`` / ``frame`` after each member's preprocessing, ``member0``, ``member1``,
    ... where those repeat), with a copy of its own backbone where its weights differ from the first's (sha256 of
    ``backbone.json`` and the safetensors files: a model ensemble). Refused unless there are two members or more,
    with the same classes in the same order and the same image size. The ensemble's temperature is 1 and its test metrics null (``metrics["members"]`` keeps each
    member's own) until ``diffprobe calibrate`` and ``diffprobe export --split`` measure them.

    ``calibration_from``: a calibrated ensemble of the same classes whose temperature, unknown thresholds and val
    confusion are copied, for members refitted on train + val (``fuse --refit``), which val can no longer
    calibrate: calibrate the ensemble of their train-only heads, as ``fuse --refit`` does for one head. Returns
    ``out``."""
    members, out = [Path(m) for m in members], Path(out)
    if len(members) < 2:
        raise DiffprobeError(f"an ensemble needs two bundles or more; got {len(members)}")
    metas = [ClassifierBundle.load_head(m)[0] for m in members]
    if names is None:
        names = ["crop" if m["preprocess"].get("crop") else "frame" for m in metas]
        if len(set(names)) < len(names):
            names = [f"member{k}" for k in range(len(members))]
    names = list(names)
    _check_names(names, "names")
    if len(names) != len(members):
        raise DiffprobeError(f"{len(names)} names for {len(members)} bundles; give one name per bundle")
    first, reference = members[0], backbone_hash(backbone_dir(members[0]))
    own_backbone = [False] + [backbone_hash(backbone_dir(m)) != reference for m in members[1:]]
    for m, meta in zip(members[1:], metas[1:], strict=True):
        if meta["classes"] != metas[0]["classes"]:
            raise DiffprobeError(f"{m}: its classes differ from {first}'s (names or order); make every member on "
                                 f"the same split")
        if meta["image_size"] != metas[0]["image_size"]:
            raise DiffprobeError(f"{m}: reads {meta['image_size']} px images, {first} {metas[0]['image_size']} px")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DiffprobeError(f"{out}: already exists and is not empty; choose a new folder for the ensemble")
    counts = metas[0].get("train_class_counts")
    meta = {"format": ENSEMBLE_FORMAT, "members": names, "classes": metas[0]["classes"],
            "image_size": metas[0]["image_size"], "temperature": 1.0,
            "metrics": {"test_accuracy": None, "test_macro_f1": None,
                        "members": {n: m["metrics"] for n, m in zip(names, metas, strict=True)}},
            # as given (relative paths stay relative): a shipped ensemble should not record one machine's folders
            "sources": {n: str(p) for n, p in zip(names, members, strict=True)},
            # for abundance estimates (EM), when the members learned from the same images
            **({"train_class_counts": counts} if all(m.get("train_class_counts") == counts for m in metas) and counts
               else {})}
    if calibration_from is not None:
        meta.update(_calibration(Path(calibration_from), meta["classes"]))
    _validate_ensemble(meta, out / "bundle.json")
    with atomic_dir(out) as tmp:
        shutil.copytree(backbone_dir(first), tmp / "backbone")
        for name, src, own in zip(names, members, own_backbone, strict=True):
            (tmp / name).mkdir()
            for f in ("bundle.json", "probe.safetensors"):
                shutil.copyfile(src / f, tmp / name / f)
            if own:
                shutil.copytree(backbone_dir(src), tmp / name / "backbone")
        write_json(tmp / "bundle.json", meta)
    return out


def _calibration(source: Path, classes: list[str]) -> dict:
    """The calibration fields of the ensemble ``source``, refused unless it is a calibrated ensemble of ``classes``."""
    if not is_ensemble(source):
        raise DiffprobeError(f"{source}: not a reading ensemble; pass the calibrated ensemble of the members' "
                             f"train-only heads")
    meta = read_json(source / "bundle.json")
    if meta["classes"] != classes:
        raise DiffprobeError(f"{source}: its classes differ from the members' (names or order)")
    if "calibration" not in meta:
        raise DiffprobeError(f"{source}: not calibrated yet; run 'diffprobe calibrate --model {source} --data "
                             f"SPLIT.csv' first")
    return {k: meta[k] for k in CALIBRATION_FIELDS if k in meta} | {"calibrated_from": str(source)}


def _check_names(names: list, where: str) -> None:
    if not all(isinstance(n, str) and _NAME.fullmatch(n) and n != "backbone" for n in names):
        raise DiffprobeError(f"{where}: member names must be folder names of letters, digits, '_', '-' and '.' "
                             f"(not 'backbone'); got {names}")
    if len(set(names)) < len(names):
        raise DiffprobeError(f"{where}: member names must differ; got {names}")


def _validate_ensemble(meta: dict, where: Path) -> None:
    check_description(meta, EnsembleJSON, where)
    _check_names(meta["members"], f"{where}: members")

"""An app project: the images (left where they are), their frozen features, the bundle's predictions and the store.

Layout of a project folder::

    DIR/
      project.json       images root, bundle path, classes, feature shape; written last, so its presence
                         means the project is complete
      features.npy       (N, D) float32: the bundle's head input for object id 0..N-1, computed once
      decisions.sqlite   objects, classes and the decision history (``app.store``)
      skipped.csv        images that could not be read (path, reason), if any
      uncertainty.npz    margin and entropy of the latest model's probabilities per object (active learning)
      model_predictions.npz  the bundle's own prediction, probability, margin and entropy per object, kept so a
                         retrain can keep them for the classes it did not learn, and be undone
      embedding.npy      (N, 32) principal components of the features, made on first use (clusters, neighbours)
      clusters.json      the latest clustering of uncertain images (``diffprobe app``'s Clusters view)
      last_retrain.json  what the latest retrain changed (ids per class transition)
      taxonomy.csv       the classes' tree (name,parent rows; ``app.taxonomy``), if the project has one
      .partial/          while ``init`` runs: one file per finished chunk, so an interrupted run resumes

Images are referenced by their path relative to the images root (or absolute, as a manifest gives them);
nothing is copied.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.special import softmax
from tqdm.auto import tqdm

from ..data import Manifest, open_dataset
from ..probe import ClassifierBundle
from ..utils import DiffprobeError, read_json, write_json, write_rows_csv
from .config import InitConfig
from .store import Store
from .taxonomy import read_taxonomy, taxonomy_csv

log = logging.getLogger(__name__)

PROJECT_FILE = "project.json"
FEATURES_FILE = "features.npy"
DB_FILE = "decisions.sqlite"
SKIPPED_FILE = "skipped.csv"
UNCERTAINTY_FILE = "uncertainty.npz"
EMBEDDING_FILE = "embedding.npy"
LAST_RETRAIN_FILE = "last_retrain.json"
MODEL_FILE = "model_predictions.npz"
TAXONOMY_FILE = "taxonomy.csv"
PARTIAL_DIR = ".partial"
FORMAT = 1


@dataclass
class Project:
    """An opened project folder: its description, its store, and its features (memory-mapped)."""

    root: Path
    info: dict
    store: Store

    @classmethod
    def open(cls, directory: str | Path) -> "Project":
        root = Path(directory).resolve()
        if not (root / PROJECT_FILE).is_file():
            hint = (" (an interrupted 'diffprobe app init' left it incomplete; run that command again to resume)"
                    if (root / PARTIAL_DIR).is_dir() else "; create one with 'diffprobe app init DIR --images "
                                                          "FOLDER --model BUNDLE'")
            raise DiffprobeError(f"{root}: not an app project, {PROJECT_FILE} is missing{hint}")
        info = read_json(root / PROJECT_FILE)
        if info.get("format") != FORMAT:
            raise DiffprobeError(f"{root / PROJECT_FILE}: project format {info.get('format')!r}, this diffprobe "
                                 f"reads {FORMAT}; re-create the project with 'diffprobe app init'")
        return cls(root, info, Store(database_url(root, info)))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def images_root(self) -> Path:
        return Path(self.info["images_root"])

    def image_file(self, path: str) -> Path:
        """The file of an object's stored ``path`` (relative to the images root, or absolute)."""
        return self.images_root / path

    def features(self) -> np.ndarray:
        return np.load(self.root / FEATURES_FILE, mmap_mode="r")

    def taxonomy(self) -> dict[str, str | None] | None:
        """The project's taxonomy (taxon -> parent), or None: the tree comes from the class names."""
        path = self.root / TAXONOMY_FILE
        return read_taxonomy(path) if path.is_file() else None

    def close(self) -> None:
        self.store.close()


def database_url(root: Path, info: dict) -> str:
    """``database_url`` of project.json (e.g. a team's PostgreSQL), or the project's own SQLite file."""
    return info.get("database_url") or f"sqlite:///{root / DB_FILE}"


def set_taxonomy(root: str | Path, taxonomy: str | Path) -> dict[str, str | None]:
    """Give the project at ``root`` the taxonomy file ``taxonomy`` (validated, then copied in as CSV)."""
    parents = read_taxonomy(taxonomy)
    tmp = Path(root) / (TAXONOMY_FILE + ".tmp")
    tmp.write_text(taxonomy_csv(parents), encoding="utf-8")
    os.replace(tmp, Path(root) / TAXONOMY_FILE)
    return parents


def uncertainty(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities -> margin (top minus second; small = uncertain) and entropy in nats (large = uncertain)."""
    top2 = -np.partition(-probs, 1, axis=1)[:, :2] if probs.shape[1] > 1 else np.c_[probs, np.zeros(len(probs))]
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(1)
    return (top2[:, 0] - top2[:, 1]).astype(np.float32), entropy.astype(np.float32)


def save_uncertainty(root: Path, margin: np.ndarray, entropy: np.ndarray) -> None:
    _save_atomic(root / UNCERTAINTY_FILE, margin=np.asarray(margin, np.float32),
                 entropy=np.asarray(entropy, np.float32))


def save_model_predictions(root: Path, labels: list[str], probability: np.ndarray, margin: np.ndarray,
                           entropy: np.ndarray) -> None:
    _save_atomic(root / MODEL_FILE, label=np.asarray(labels, dtype=str),
                 probability=np.asarray(probability, np.float64), margin=np.asarray(margin, np.float32),
                 entropy=np.asarray(entropy, np.float32))


def model_predictions(project: Project) -> dict[str, np.ndarray]:
    """The bundle's own predictions per object: {label, probability, margin, entropy}. A project made before they
    were kept gets them now: from the store while no retrain has replaced them, else from the bundle's head."""
    path = project.root / MODEL_FILE
    if not path.is_file():
        if not project.store.retrains():
            rows = project.store.all_objects()
            stored = uncertainty_of(project.root)
            if stored is None:
                raise DiffprobeError(f"{project.root}: {UNCERTAINTY_FILE} is missing; re-create the project")
            save_model_predictions(project.root, [r["predicted_label"] for r in rows],
                                   np.asarray([r["probability"] for r in rows]), stored["margin"], stored["entropy"])
        else:
            meta, head = ClassifierBundle.load_head(Path(project.info["model"]))
            features, labels, parts = project.features(), [], []
            for start in range(0, len(features), 8192):
                probs = softmax(head.logits(np.asarray(features[start : start + 8192], np.float32))
                                / float(meta["temperature"]), axis=1)
                labels += [meta["classes"][c] for c in probs.argmax(1)]
                parts.append((probs.max(1), *uncertainty(probs)))
            save_model_predictions(project.root, labels, *(np.concatenate(p) for p in zip(*parts, strict=True)))
    with np.load(path) as f:
        return {k: f[k] for k in ("label", "probability", "margin", "entropy")}


def uncertainty_of(root: Path) -> dict[str, np.ndarray] | None:
    """{margin, entropy} per object of the latest model, or None for a project made before they were kept."""
    if not (root / UNCERTAINTY_FILE).is_file():
        return None
    with np.load(root / UNCERTAINTY_FILE) as f:
        return {"margin": f["margin"], "entropy": f["entropy"]}


def _object_ids(paths: list[str]) -> list[str]:
    """EcoTaxa-style object ids: the file name without extension, or the whole relative path where names repeat."""
    stems = [Path(p).stem for p in paths]
    repeated = Counter(stems)
    return [s if repeated[s] == 1 else Path(p).with_suffix("").as_posix().strip("/").replace("/", "_")
            for s, p in zip(stems, paths, strict=True)]


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def _save_atomic(path: Path, **arrays) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _features_by_chunk(bundle: ClassifierBundle, files: list[Path], partial: Path, *, chunk: int, batch_size: int,
                       progress: bool) -> list[Path]:
    """Compute features and logits chunk by chunk into ``partial``; chunks already there are kept (resume)."""
    done = []
    bar = tqdm(total=len(files), desc="features", unit="img", disable=not progress, mininterval=1.0)
    for k, start in enumerate(range(0, len(files), chunk)):
        part = partial / f"chunk-{k:06d}.npz"
        paths = files[start : start + chunk]
        if not part.is_file():
            images, meta, ok, skipped = bundle.load_paths(paths)
            x = bundle.features(images, meta, batch_size=batch_size)
            _save_atomic(part, features=x.astype(np.float32), logits=bundle.head.logits(x).astype(np.float32),
                         index=np.asarray(ok, np.int64) + start,
                         size=np.asarray([_image_size(paths[i]) for i in ok], np.int64).reshape(-1, 2),
                         skipped=np.asarray([f"{p}\t{why}" for p, why in skipped], dtype=str))
        done.append(part)
        bar.update(len(paths))
    bar.close()
    return done


def _check_target(directory: Path, source: dict) -> None:
    if (directory / PROJECT_FILE).exists():
        raise DiffprobeError(f"{directory}: already an app project; open it with 'diffprobe app --project "
                             f"{directory}', or choose a new folder")
    partial = directory / PARTIAL_DIR
    if partial.is_dir():
        previous = read_json(partial / "source.json") if (partial / "source.json").is_file() else None
        if previous != source:
            raise DiffprobeError(f"{directory}: holds an interrupted init of other images or another model "
                                 f"({previous}); delete {partial} or choose a new folder")
    elif directory.exists() and any(directory.iterdir()):
        raise DiffprobeError(f"{directory}: exists and is not empty; an app project needs a new or empty folder")


def init_project(directory: str | Path, images: str | Path | Manifest, model: str | Path, *,
                 chunk: int = InitConfig.chunk, batch_size: int = InitConfig.batch_size,
                 precision: str = InitConfig.precision, database: str | None = None,
                 taxonomy: str | Path | None = None, progress: bool = True) -> dict:
    """Make an app project of ``images`` (folder, manifest CSV or EcoTaxa TSV; labels in them are not used) with
    the bundle ``model``: each image's features computed once, in chunks (an interrupted run resumes at the
    chunk it was in), its prediction, and the store (``database``: a SQLAlchemy URL; default the project's
    SQLite file). ``taxonomy``: a taxonomy file (``app.taxonomy``) for the sidebar's tree, else the tree comes from
    the class names. Returns a summary (n_objects, n_skipped, classes, ...)."""
    directory = Path(directory)
    if taxonomy is not None:
        read_taxonomy(taxonomy)  # refused before any feature is computed
    manifest = images if isinstance(images, Manifest) else open_dataset(images, labelled=False)
    model = Path(model).resolve()
    source = {"images": str(manifest.info.get("source", manifest.root)), "model": str(model), "n_files": len(manifest)}
    _check_target(directory, source)
    bundle = ClassifierBundle.load(model, precision=precision)
    partial = directory / PARTIAL_DIR
    partial.mkdir(parents=True, exist_ok=True)
    write_json(partial / "source.json", source)

    files = [manifest.full_path(i) for i in range(len(manifest))]
    chunks = [np.load(p) for p in _features_by_chunk(bundle, files, partial, chunk=chunk, batch_size=batch_size,
                                                     progress=progress)]
    index = np.concatenate([c["index"] for c in chunks])
    if not len(index):
        raise DiffprobeError(f"{source['images']}: none of the {len(files)} images could be read; see the reasons "
                             f"in {partial}")
    features = np.concatenate([c["features"] for c in chunks])
    logits = np.concatenate([c["logits"] for c in chunks])
    sizes = np.concatenate([c["size"] for c in chunks])
    skipped = [line.split("\t", 1) for c in chunks for line in c["skipped"].tolist()]

    probs = softmax(logits / bundle.temperature, axis=1)
    best = probs.argmax(1)
    paths = [manifest.paths[i] for i in index]
    samples = [(Path(manifest.root.name) / Path(p).parent).as_posix() for p in paths]
    rows = [{"id": k, "object_id": oid, "path": p, "sample": s, "width": int(w), "height": int(h),
             "predicted_label": bundle.classes[c], "probability": float(probs[k, c])}
            for k, (oid, p, s, (w, h), c) in enumerate(zip(_object_ids(paths), paths, samples, sizes, best, strict=True))]

    margin, entropy = uncertainty(probs)
    save_uncertainty(directory, margin, entropy)
    save_model_predictions(directory, [r["predicted_label"] for r in rows], probs.max(1), margin, entropy)
    np.save(directory / (FEATURES_FILE + ".tmp.npy"), features)
    os.replace(directory / (FEATURES_FILE + ".tmp.npy"), directory / FEATURES_FILE)
    info = {"format": FORMAT, "images": source["images"], "images_root": str(manifest.root.resolve()),
            "model": str(model), "classes": list(bundle.classes), "n_objects": len(rows),
            "n_skipped": len(skipped), "feature_dim": int(features.shape[1]), "database_url": database}
    db = directory / DB_FILE
    if database is None and db.exists():
        db.unlink()  # a store half-filled by an interrupted run; the features are what is worth keeping
    store = Store(database_url(directory.resolve(), info))
    try:
        store.add_classes(bundle.classes, "model")
        store.add_objects(rows)
    finally:
        store.close()
    if taxonomy is not None:
        set_taxonomy(directory, taxonomy)
    if skipped:
        write_rows_csv([{"path": p, "reason": why} for p, why in skipped], directory / SKIPPED_FILE)
    write_json(directory / PROJECT_FILE, info)  # last: the project is complete
    shutil.rmtree(partial, ignore_errors=True)
    log.info("app project %s: %d objects, %d skipped", directory, len(rows), len(skipped))
    return {**info, "directory": str(directory)}

"""Datasets as manifests: which files, which labels, which split.

A manifest is a CSV (``path,label,split``) with paths relative to a root directory recorded
in a JSON sidecar. Every stage and every method reads the same manifest, so all of them
see the same train / val / test split.

Sources: an image folder (one sub-folder per class, or a flat folder for unlabelled data),
or a CSV (``path,label``; label may be empty for unlabelled images).
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config.data import SETTINGS, SplitConfig
from ..utils import DiffprobeError, expand_data_path, hash_json, read_json, stable_seed, write_json
from .ecotaxa import CATEGORY_COLUMN, read_ecotaxa_rows
from .io import IMAGE_EXTENSIONS, is_image_name

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Manifest:
    """A list of images with labels (``None`` when unlabelled) and split names (``""`` before splitting).

    ``paths`` are relative to ``root`` (or absolute). ``ignored`` lists files passed over
    while scanning, with the reason.
    """

    root: Path
    paths: list[str]
    labels: list[str | None]
    splits: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.splits:
            self.splits = [""] * len(self.paths)
        if not len(self.paths) == len(self.labels) == len(self.splits):
            raise ValueError("paths, labels and splits must have the same length")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        return len(self.labels) > 0 and all(lab is not None for lab in self.labels)

    @property
    def classes(self) -> list[str]:
        return sorted({lab for lab in self.labels if lab is not None})

    def full_path(self, i: int) -> Path:
        p = Path(self.paths[i])
        return p if p.is_absolute() else self.root / p

    def counts(self, split: str | None = None) -> dict[str, int]:
        c = Counter(lab for lab, s in zip(self.labels, self.splits) if split is None or s == split)
        return dict(sorted(c.items()))

    def subset(self, mask) -> "Manifest":
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        return Manifest(self.root, [self.paths[i] for i in idx], [self.labels[i] for i in idx],
                        [self.splits[i] for i in idx], list(self.ignored), dict(self.info))

    def split_mask(self, split: str) -> np.ndarray:
        return np.array([s == split for s in self.splits], dtype=bool)

    def fingerprint(self) -> str:
        """Hash of the manifest's content and files' sizes/mtimes: keys caches of images and features."""
        stats = []
        for i in range(len(self)):
            try:
                st = os.stat(self.full_path(i))
                stats.append((st.st_size, int(st.st_mtime)))
            except OSError:
                stats.append(None)
        return hash_json([str(self.root.resolve()), self.paths, self.labels, self.splits, stats])

    # ---- on disk -------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``path`` (CSV) and ``path.json`` (root and how the manifest was made)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: ranks may save it at once
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "split"])
            for p, lab, s in zip(self.paths, self.labels, self.splits):
                w.writerow([p, "" if lab is None else lab, s])
        os.replace(tmp, path)
        write_json(path.with_suffix(".json"), {"root": str(self.root.resolve()), "info": self.info,
                                                "ignored": self.ignored})
        return path

    @classmethod
    def load(cls, path: str | Path, root: str | Path | None = None) -> "Manifest":
        """Read a manifest CSV (``path,label[,split]``). Relative paths resolve against ``root``,
        else the sidecar's root (a relative one counts from the sidecar's folder, so a manifest
        shipped with a model finds a dataset beside the repository), else the CSV's folder."""
        path = Path(path)
        if not path.is_file():
            raise DiffprobeError(f"{path}: manifest not found; pass a CSV with columns path,label[,split]")
        side = path.with_suffix(".json")
        meta = read_json(side) if side.is_file() else {}
        root = Path(root) if root is not None else path.parent / expand_data_path(meta.get("root", "."), side)
        paths, labels, splits = [], [], []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise DiffprobeError(f"{path}: a manifest needs a header with a 'path' column "
                                     f"(and 'label', optionally 'split'); found {reader.fieldnames}")
            for row_no, row in enumerate(reader, start=2):
                p = (row.get("path") or "").strip()
                if not p:
                    raise DiffprobeError(f"{path}, line {row_no}: empty path")
                lab = (row.get("label") or "").strip() or None
                s = (row.get("split") or "").strip()
                if s and s not in SPLITS:
                    raise DiffprobeError(f"{path}, line {row_no}: split {s!r} is not one of {SPLITS}")
                paths.append(p), labels.append(lab), splits.append(s)
        if not paths:
            raise DiffprobeError(f"{path}: manifest holds no rows")
        return cls(root, paths, labels, splits, [tuple(x) for x in meta.get("ignored", [])], meta.get("info", {}))


def scan_folder(root: str | Path, labelled: bool = True) -> Manifest:
    """List the images of a folder.

    labelled=True: one sub-folder per class (files in nested folders belong to the class).
    labelled=False: every image under ``root``, recursively, without labels.
    Symlinked folders are followed once; loops are detected and reported, never followed.
    """
    root = Path(root)
    if not root.is_dir():
        raise DiffprobeError(f"{root}: not a directory; point --data at a folder of images "
                             f"(one sub-folder per class) or a manifest CSV")
    paths: list[str] = []
    labels: list[str | None] = []
    ignored: list[tuple[str, str]] = []
    seen_dirs: set[str] = set()

    def walk(folder: Path, label: str | None):
        real = os.path.realpath(folder)
        if real in seen_dirs:
            ignored.append((str(folder.relative_to(root)), "symlink loop or repeated folder; not followed"))
            return
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            ignored.append((str(folder.relative_to(root)), f"cannot list folder ({e.strerror})"))
            return
        for e in entries:
            rel = str(Path(e.path).relative_to(root))
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                walk(Path(e.path), label)
            elif e.name.startswith("."):
                continue
            elif is_image_name(e.name):
                paths.append(rel)
                labels.append(label)
            else:
                ignored.append((rel, "not an image file extension"))

    if labelled:
        top_files = [e.name for e in os.scandir(root) if e.is_file() and is_image_name(e.name)]
        class_dirs = sorted(e for e in os.listdir(root) if (root / e).is_dir() and not e.startswith("."))
        if not class_dirs:
            hint = f" It holds {len(top_files)} images directly: use it as unlabelled data." if top_files else ""
            raise DiffprobeError(f"{root}: no class folders found; a labelled dataset needs one sub-folder "
                                 f"per class.{hint}")
        for name in top_files:
            ignored.append((name, "image outside any class folder"))
        for cls in class_dirs:
            before = len(paths)
            walk(root / cls, cls)
            if len(paths) == before:
                log.warning("class folder %s holds no images; the class is left out", root / cls)
                ignored.append((cls, "empty class folder; class left out"))
    else:
        walk(root, None)
    if not paths:
        raise DiffprobeError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return Manifest(root, paths, labels, ignored=ignored, info={"source": str(root)})


def read_ecotaxa_tsv(path: str | Path, labelled: bool = True, *, label_column: str = CATEGORY_COLUMN,
                     statuses: tuple[str, ...] | None = ("validated",)) -> Manifest:
    """Read an EcoTaxa export as a ``Manifest`` (paths relative to the TSV's folder).

    labelled:     take labels from ``label_column`` (default ``object_annotation_category``;
                  ``object_annotation_hierarchy`` gives full taxonomic paths). False: no labels.
    statuses:     keep only objects with these ``object_annotation_status`` values when labelled
                  (default validated only; None keeps all). Ignored when the column is absent.
    Rows left out are listed in ``manifest.ignored`` with the reason (see ``data.ecotaxa`` for the format).
    """
    path = Path(path)
    paths, labels, ignored = read_ecotaxa_rows(path, labelled, label_column=label_column, statuses=statuses)
    return Manifest(path.parent, paths, labels, ignored=ignored, info={"source": str(path), "format": "ecotaxa"})


def open_dataset(source: str | Path, labelled: bool = True) -> Manifest:
    """An image folder or a manifest CSV, whichever ``source`` is."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() in (".csv", ".tsv"):
        if source.suffix.lower() == ".tsv":
            return read_ecotaxa_tsv(source, labelled=labelled)
        return Manifest.load(source)
    if source.is_dir():
        return scan_folder(source, labelled=labelled)
    raise DiffprobeError(f"{source}: no such folder or manifest; give an image folder or a .csv/.tsv manifest")


def split_manifest(m: Manifest, *, val: float = SplitConfig.val, test: float = SplitConfig.test,
                   seed: int = SplitConfig.seed,
                   min_per_class: int = 3) -> Manifest:
    """Stratified, deterministic train/val/test split.

    Each class is shuffled by a seed derived from (seed, class name), so the split of a class
    does not change when other classes are added or removed. Every class with at least
    ``min_per_class`` images gets at least one val and one test image; smaller classes are
    left out with a warning naming them.
    """
    if not m.labelled:
        raise DiffprobeError("splitting needs labels; this dataset has unlabelled images")
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise DiffprobeError(f"split fractions val={val}, test={test} must be in (0, 1) with val + test < 1")
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(m.labels):
        by_class.setdefault(lab, []).append(i)
    splits = [""] * len(m)
    dropped = []
    for cls, idx in sorted(by_class.items()):
        if len(idx) < min_per_class:
            dropped.append(f"{cls} ({len(idx)})")
            continue
        order = sorted(idx, key=lambda i: m.paths[i])
        rng = np.random.default_rng(stable_seed("split", seed, cls))
        order = [order[j] for j in rng.permutation(len(order))]
        n = len(order)
        n_val = max(1, int(round(val * n)))
        n_test = max(1, int(round(test * n)))
        for j, i in enumerate(order):
            splits[i] = "val" if j < n_val else "test" if j < n_val + n_test else "train"
    if dropped:
        log.warning("classes with fewer than %d images left out of the split: %s", min_per_class, ", ".join(dropped))
    keep = [s != "" for s in splits]
    out = Manifest(m.root, m.paths, m.labels, splits, list(m.ignored), dict(m.info)).subset(keep)
    out.info.update({"split_seed": seed, "val": val, "test": test, "min_per_class": min_per_class,
                     "dropped_classes": dropped})
    if not out.paths:
        raise DiffprobeError(f"no class has the {min_per_class} images a split needs")
    return out


def make_setting(m: Manifest, setting: str = SplitConfig.setting, *, per_class: int = SplitConfig.per_class,
                 seed: int = SplitConfig.seed) -> Manifest:
    """``natural``: every class as collected (long-tailed). ``balanced``: classes with at least
    ``per_class`` images, ``per_class`` drawn from each by seed."""
    if setting not in SETTINGS:
        raise DiffprobeError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    if setting == "natural":
        out = m.subset(np.ones(len(m), dtype=bool))
        out.info["setting"] = "natural"
        return out
    keep = np.zeros(len(m), dtype=bool)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(m.labels):
        by_class.setdefault(lab, []).append(i)
    kept = 0
    for cls, idx in sorted(by_class.items()):
        if len(idx) < per_class:
            continue
        idx = sorted(idx, key=lambda i: m.paths[i])
        rng = np.random.default_rng(stable_seed("balanced", seed, cls))
        keep[[idx[j] for j in rng.choice(len(idx), per_class, replace=False)]] = True
        kept += 1
    if kept < 2:
        raise DiffprobeError(f"balanced setting: only {kept} classes have {per_class} images; lower --per-class")
    out = m.subset(keep)
    out.info.update({"setting": "balanced", "per_class": per_class})
    return out


def prepare_split(source: str | Path, *, setting: str = SplitConfig.setting, per_class: int = SplitConfig.per_class,
                  val: float = SplitConfig.val, test: float = SplitConfig.test, seed: int = SplitConfig.seed,
                  min_per_class: int = 3) -> Manifest:
    """Source (folder or manifest) -> setting -> stratified split. Keeps an existing split if the manifest has one."""
    m = open_dataset(source, labelled=True)
    if all(s in SPLITS for s in m.splits) and setting == "natural":
        return m
    m = make_setting(m, setting, per_class=per_class, seed=seed)
    return split_manifest(m, val=val, test=test, seed=seed, min_per_class=min_per_class)

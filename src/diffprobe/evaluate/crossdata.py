"""Evaluating a classifier on another labelled dataset (folder, manifest CSV or EcoTaxa TSV): how its classes
line up with the model's, and the computations that need no file. The command itself, which reads the images and
writes the results, is ``workflows.evaluate.evaluate_bundle``.

Two ways to line up the data's classes with the model's:

- **by name** (default): a data class counts only if the model has a class of exactly that
  name. Images of other classes are skipped and counted per class (never guessed); they
  also serve as "unknowns" to measure how well the model flags classes it never saw.
- **by class map** (``--class-map``): a CSV ``group,model_pattern,data_pattern`` of shell-style
  patterns (``copepod,copepod_*,copepoda``; case-insensitive). The model's calibrated
  probabilities are summed over the model classes of each group (``ClassMap.group_probs``,
  ``condition_on_groups``) and the prediction is the most probable group; data images whose class
  matches no data pattern are skipped and counted. This gives coarse (e.g. order-level) evaluation
  across datasets whose class lists differ.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from ..data.manifest import SPLITS, Manifest
from ..utils import DiffprobeError

MAP_COLUMNS = ("group", "model_pattern", "data_pattern")


@dataclass
class ClassMap:
    """Groups of model classes and data classes.

    groups:       group names, in the order of the CSV.
    model_groups: (C_model,) int, the group of each model class, -1 for none.
    data_groups:  {data class: group index} for the data classes any pattern matches.
    """

    groups: list[str]
    model_groups: np.ndarray
    data_groups: dict[str, int]

    def group_probs(self, probs: np.ndarray) -> np.ndarray:
        """(N, C_model) probabilities -> (N, G) summed per group."""
        onehot = np.zeros((len(self.model_groups), len(self.groups)))
        member = self.model_groups >= 0
        onehot[np.flatnonzero(member), self.model_groups[member]] = 1.0
        return probs @ onehot


def _matches(pattern: str, names: list[str]) -> list[str]:
    return [n for n in names if fnmatchcase(n.lower(), pattern.lower())]


def read_class_map(path: str | Path, model_classes: list[str], data_classes: list[str]) -> ClassMap:
    """Parse and check a class-map CSV against the model's and the data's classes."""
    path = Path(path)
    if not path.is_file():
        raise DiffprobeError(f"{path}: class map not found")
    groups: list[str] = []
    model_of: dict[str, str] = {}
    data_of: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in MAP_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DiffprobeError(f"{path}: missing column(s) {missing}; a class map needs the header "
                                 f"{','.join(MAP_COLUMNS)} (e.g. 'copepod,copepod_*,copepoda')")
        for line, row in enumerate(reader, start=2):
            group, mpat, dpat = ((row.get(c) or "").strip() for c in MAP_COLUMNS)
            if not (group and mpat and dpat):
                raise DiffprobeError(f"{path}, line {line}: every row needs a group, a model_pattern and a "
                                     f"data_pattern; got {group!r}, {mpat!r}, {dpat!r}")
            model_hits = _matches(mpat, model_classes)
            if not model_hits:
                raise DiffprobeError(f"{path}, line {line} (group {group!r}): model_pattern {mpat!r} matches no "
                                     f"class of the model; its classes include {model_classes[:8]}")
            if group not in groups:
                groups.append(group)
            for side, hits, owner in (("model", model_hits, model_of), ("data", _matches(dpat, data_classes),
                                                                         data_of)):
                for name in hits:
                    if owner.get(name, group) != group:
                        raise DiffprobeError(f"{path}, line {line}: {side} class {name!r} is in two groups, "
                                             f"{owner[name]!r} and {group!r}; make the patterns disjoint")
                    owner[name] = group
    if not groups:
        raise DiffprobeError(f"{path}: the class map has no rows")
    index = {g: k for k, g in enumerate(groups)}
    model_groups = np.array([index[model_of[c]] if c in model_of else -1 for c in model_classes])
    return ClassMap(groups, model_groups, {c: index[g] for c, g in data_of.items()})


def select_part(m: Manifest, part: str, where: str | Path) -> Manifest:
    """The images of one split part ("train", "val", "test") or all of them ("all")."""
    if part == "all":
        return m
    if part not in SPLITS:
        raise DiffprobeError(f"unknown part {part!r}; choose one of {SPLITS + ('all',)}")
    mask = m.split_mask(part)
    if not mask.any():
        raise DiffprobeError(f"{where}: no images in the {part!r} part; pass a split manifest ('diffprobe split') "
                             f"or use all images")
    return m.subset(mask)


def condition_on_groups(p: np.ndarray) -> np.ndarray:
    """(N, G) group probabilities (``ClassMap.group_probs``) -> conditioned on the image being in one of the
    groups (each row divided by its sum)."""
    return p / np.clip(p.sum(1, keepdims=True), 1e-12, None)


def per_class_metrics(y: np.ndarray, pred: np.ndarray, names: list[str]) -> dict:
    """Precision, recall, F1 and counts for every class present in the data or predicted: {name: {"n",
    "n_predicted", "precision", "recall", "f1"}}; y, pred (N,) indices into ``names``."""
    labels = sorted(set(y.tolist()) | set(pred.tolist()))
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    n_pred = np.bincount(pred, minlength=len(names))
    return {names[k]: {"n": int(n[i]), "n_predicted": int(n_pred[k]), "precision": float(p[i]),
                       "recall": float(r[i]), "f1": float(f[i])} for i, k in enumerate(labels)}


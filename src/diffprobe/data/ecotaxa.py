"""EcoTaxa exports (TSV) as datasets.

An EcoTaxa export is a tab-separated table with one row per object (``object_id``), the image
file (``img_file_name``, relative to the TSV's folder) and, once sorted by people, its category
(``object_annotation_category``, e.g. ``Copepoda``), the full path in the taxonomy
(``object_annotation_hierarchy``, e.g. ``living>Eukaryota>...>Copepoda``) and the status
(``object_annotation_status``: ``validated``, ``predicted``, ``dubious``, ``unclassified``).
Some exports have a second header-like row of type codes (``[t]`` text, ``[f]`` float); it is skipped.

As a labelled dataset only *validated* objects count by default: a ``predicted`` category is a
classifier's guess, not ground truth. Objects with several images (``img_rank`` > 0) are
represented by their first image (rank 0).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ..utils import DiffprobeError

FILE_COLUMN = "img_file_name"
CATEGORY_COLUMN = "object_annotation_category"
STATUS_COLUMN = "object_annotation_status"
_TYPE_CODE = re.compile(r"^\[[a-z]\]$")


def _is_type_row(row: dict[str, str]) -> bool:
    """The ``[t]``/``[f]`` row some exports put under the header."""
    values = [v.strip() for v in row.values() if isinstance(v, str) and v.strip()]
    return bool(values) and all(_TYPE_CODE.match(v) for v in values)


def read_ecotaxa_rows(path: str | Path, labelled: bool = True, *, label_column: str = CATEGORY_COLUMN,
                      statuses: tuple[str, ...] | None = ("validated",)
                      ) -> tuple[list[str], list[str | None], list[tuple[str, str]]]:
    """Read an EcoTaxa export's image paths (relative to the TSV's folder), labels and left-out rows.

    ``data.manifest.read_ecotaxa_tsv`` makes a ``Manifest`` of them (the way ``open_dataset`` reads a ``.tsv``).

    labelled:     take labels from ``label_column`` (default ``object_annotation_category``;
                  ``object_annotation_hierarchy`` gives full taxonomic paths). False: no labels.
    statuses:     keep only objects with these ``object_annotation_status`` values when labelled
                  (default validated only; None keeps all). Ignored when the column is absent.
    Rows left out are returned as (name, reason) pairs (``manifest.ignored``).
    """
    path = Path(path)
    if not path.is_file():
        raise DiffprobeError(f"{path}: EcoTaxa TSV not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter="\t")
        columns = [c.strip() for c in (reader.fieldnames or [])]
        reader.fieldnames = columns
        needed = [FILE_COLUMN] + ([label_column] if labelled else [])
        missing = [c for c in needed if c not in columns]
        if missing:
            raise DiffprobeError(f"{path}: missing column {', '.join(repr(c) for c in missing)}; an EcoTaxa export "
                                 f"needs {FILE_COLUMN!r} (image path relative to the TSV)"
                                 + (f" and {label_column!r} for labels (or read it as unlabelled)" if labelled else "")
                                 + f". Columns found: {columns[:12]}{' ...' if len(columns) > 12 else ''}")
        use_status = labelled and statuses is not None and STATUS_COLUMN in columns
        paths: list[str] = []
        labels: list[str | None] = []
        ignored: list[tuple[str, str]] = []
        seen_status: set[str] = set()
        for line, row in enumerate(reader, start=2):
            if line == 2 and _is_type_row(row):
                continue
            name = (row.get(FILE_COLUMN) or "").strip()
            if not name:
                ignored.append((f"{path.name}:{line}", f"empty {FILE_COLUMN}"))
                continue
            if (row.get("img_rank") or "0").strip() not in ("0", ""):
                continue  # further images of an object already listed
            label = None
            if labelled:
                status = (row.get(STATUS_COLUMN) or "").strip()
                seen_status.add(status)
                if use_status and status not in statuses:
                    ignored.append((name, f"status {status or 'empty'!r} is not {'/'.join(statuses)}"))
                    continue
                label = (row.get(label_column) or "").strip()
                if not label:
                    ignored.append((name, f"no {label_column}"))
                    continue
            paths.append(name)
            labels.append(label)
    if not paths:
        why = (f"; statuses present: {sorted(seen_status)} (pass statuses=None to use every annotated object)"
               if use_status else "")
        raise DiffprobeError(f"{path}: no usable objects{why}")
    return paths, labels, ignored

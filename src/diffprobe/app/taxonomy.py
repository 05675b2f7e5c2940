"""The classes as a tree, as EcoTaxa users work in a taxonomy: from a taxonomy file when the project has one, else
from the names (NDSB's ``copepod_calanoid_eucalanus`` is copepod > calanoid > eucalanus).

A taxonomy file is CSV (or TSV: a ``.tsv`` file, or a header with a tab) with a header naming the columns ``name``
and ``parent`` (other columns are ignored), one row per taxon; an empty parent puts a taxon at the top. Every
parent must be a name of the file, no name twice, no taxon its own ancestor; each error names the file and the line.

From the names: split on ``_``; a prefix that at least two classes share is a group (``copepod`` of
``copepod_calanoid`` and ``copepod_other``), and a class whose whole name is such a prefix is a group too (the class
``copepod_calanoid`` holds ``copepod_calanoid_eucalanus``). Either way a group that is not a class and holds one
child only is left out (``fish`` > ``larvae`` is shown as ``fish_larvae``), groups of no class of the project are
not shown, and each group's counts are summed over everything under it. Children come in the classes' order.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

from ..utils import DiffprobeError
from .store import check_class_name

COUNTS = ("predicted", "validated", "dubious", "total")  # of each class in Store.class_counts, summed up the tree


def read_taxonomy(path: str | Path) -> dict[str, str | None]:
    """Taxon -> its parent (None at the top) of a taxonomy file, validated (DiffprobeError naming the line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DiffprobeError(f"{path}: cannot read the taxonomy file ({e})") from None
    return parse_taxonomy(text, str(path), tab=path.suffix.lower() == ".tsv")


def parse_taxonomy(text: str, source: str = "taxonomy", *, tab: bool = False) -> dict[str, str | None]:
    """``read_taxonomy`` of a file's text (``source``: its name in the messages)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise DiffprobeError(f"{source}: the taxonomy file is empty; it needs a header 'name,parent' and a row per "
                             f"taxon")
    delimiter = "\t" if tab or "\t" in lines[0][1] else ","
    rows = [(n, next(csv.reader(io.StringIO(line), delimiter=delimiter))) for n, line in lines]
    header_line, header = rows[0]
    columns = [h.strip().lower() for h in header]
    if "name" not in columns or "parent" not in columns:
        raise DiffprobeError(f"{source}:{header_line}: the first row must name the columns 'name' and 'parent' "
                             f"(found {delimiter.join(header)[:100]!r}); one row per taxon follows, e.g. "
                             f"'copepod_calanoid{delimiter}copepod'")
    at_name, at_parent = columns.index("name"), columns.index("parent")
    parents: dict[str, str | None] = {}
    where: dict[str, int] = {}
    for n, row in rows[1:]:
        if len(row) <= max(at_name, at_parent):
            raise DiffprobeError(f"{source}:{n}: {len(row)} column{'s' if len(row) != 1 else ''}, the header names "
                                 f"{len(columns)} (is the separator {'a tab' if delimiter == chr(9) else 'a comma'}?)")
        try:
            name = check_class_name(row[at_name])
            parent = check_class_name(row[at_parent]) if row[at_parent].strip() else None
        except DiffprobeError as e:
            raise DiffprobeError(f"{source}:{n}: {e}") from None
        if name in parents:
            raise DiffprobeError(f"{source}:{n}: {name!r} is already a taxon of line {where[name]}; each name once")
        if parent == name:
            raise DiffprobeError(f"{source}:{n}: {name!r} cannot be its own parent")
        parents[name], where[name] = parent, n
    for name, parent in parents.items():
        if parent is not None and parent not in parents:
            raise DiffprobeError(f"{source}:{where[name]}: the parent {parent!r} of {name!r} is not a taxon of the "
                                 f"file; add a row '{parent}{delimiter}' (at the top) or '{parent}{delimiter}PARENT'")
    for name in parents:
        seen = [name]
        while (up := parents[seen[-1]]) is not None:
            if up in seen:
                raise DiffprobeError(f"{source}:{where[name]}: {name!r} is its own ancestor "
                                     f"({' > '.join(reversed([*seen, up]))})")
            seen.append(up)
    return parents


def taxonomy_csv(parents: dict[str, str | None]) -> str:
    """A taxonomy as the file ``read_taxonomy`` reads (CSV)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "parent"])
    writer.writerows([name, parent or ""] for name, parent in parents.items())
    return out.getvalue()


def name_parents(names: list[str]) -> dict[str, str | None]:
    """Class or group -> its parent group, from the names: the longest shorter ``_`` prefix that at least two
    classes share."""
    tokens = [tuple(n.split("_")) for n in names]
    shared = Counter(t[:j] for t in tokens for j in range(1, len(t) + 1))
    groups = {p for p, k in shared.items() if k >= 2 and "_".join(p).strip("_")}
    parents: dict[str, str | None] = {}
    for node in [*tokens, *sorted(groups)]:
        up = next((node[:j] for j in range(len(node) - 1, 0, -1) if node[:j] in groups), None)
        parents["_".join(node)] = "_".join(up) if up else None
    return parents


def class_tree(counts: list[dict], taxonomy: dict[str, str | None] | None = None) -> dict:
    """The classes of ``counts`` (``Store.class_counts``: name and counts per class, in class order) as a tree:
    ``{"source": "taxonomy" | "names", "nodes": [...], "unplaced": [...]}``. A node is ``{"name", "label", "class",
    predicted, validated, dubious, total, "children"}``: ``label`` its name as shown under its parent (from the
    names: what follows the parent's name), ``class`` whether it is a class of the project (a group may be one
    too), the counts its own plus its children's. ``unplaced``: classes the taxonomy does not name (at the top)."""
    classes = {c["name"]: c for c in counts}
    parents = taxonomy if taxonomy is not None else name_parents(list(classes))
    children: dict[str | None, list[str]] = defaultdict(list)
    placed: set[str] = set()
    for name in classes:  # each class and its ancestors, each child after its parent's earlier children
        node: str | None = name
        while node is not None and node not in placed:
            placed.add(node)
            children[parents.get(node)].append(node)
            node = parents.get(node)

    def label(name: str, above: str | None) -> str:
        if taxonomy is None and above and name.startswith(above + "_"):
            return name[len(above) + 1 :]
        return name

    def make(name: str, above: str | None) -> dict:
        if name not in classes and len(children[name]) == 1:  # a group of one group: shown as that one
            return make(children[name][0], above)
        kids = [make(k, name) for k in children[name]]
        own = classes.get(name, {})
        return {"name": name, "label": label(name, above), "class": name in classes,
                **{k: int(own.get(k, 0)) + sum(c[k] for c in kids) for k in COUNTS}, "children": kids}

    return {"source": "names" if taxonomy is None else "taxonomy",
            "nodes": [make(name, None) for name in children[None]],
            "unplaced": [] if taxonomy is None else [c for c in classes if c not in taxonomy]}

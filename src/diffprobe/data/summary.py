"""Dataset summary: classes, counts, imbalance, a class-count plot and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils import stable_seed, write_json
from .io import ImageReadError, read_image
from .manifest import Manifest
from .preprocess import Preprocess


def summarize(m: Manifest, out_dir: str | Path, *, per_class: int = 6, max_classes: int = 40, seed: int = 0) -> dict:
    """Write ``summary.json``, ``class_counts.png`` and ``contact_sheet.png`` to ``out_dir``; return the summary."""
    from ..report.plots import class_counts_plot, image_grid  # noqa: PLC0415 - matplotlib only when plotting

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = m.counts()
    values = np.array(list(counts.values())) if counts else np.array([0])
    summary = {
        "n_images": len(m), "n_classes": len(counts), "labelled": m.labelled,
        "counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "largest": int(values.max()), "smallest": int(values.min()),
        "imbalance_ratio": float(values.max() / max(1, values.min())),
        "median_per_class": float(np.median(values)),
        "classes_with_at_least": {str(n): int((values >= n).sum()) for n in (10, 20, 50, 80, 100, 200)},
        "ignored_files": len(m.ignored),
    }
    if any(m.splits):
        summary["split_sizes"] = {s: int(sum(1 for x in m.splits if x == s)) for s in ("train", "val", "test")}
    write_json(out / "summary.json", summary)

    order = sorted(counts, key=lambda c: -counts[c])
    class_counts_plot(counts, out / "class_counts.png",
                      title=f"{len(m)} images, imbalance ratio {summary['imbalance_ratio']:.0f}:1")
    shown = order[:max_classes]
    pre = Preprocess(size=64, invert=False, flatfield=False)  # as imaged: no inversion, no field correction
    rng = np.random.default_rng(stable_seed("sheet", seed))
    rows = []
    for cls in shown:
        idx = [i for i, lab in enumerate(m.labels) if lab == cls]
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if idx else []
        rows.append([_thumbnail(m.full_path(i), pre) for i in pick] + [None] * (per_class - len(pick)))
    image_grid(rows, out / "contact_sheet.png", row_labels=[f"{c}\n({counts[c]})" for c in shown], vmax=255,
               cell=0.9, label_width=2.2, dpi=90)
    return summary


def _thumbnail(path, pre: Preprocess) -> np.ndarray | str:
    try:
        return pre(read_image(path))
    except ImageReadError:
        return "unreadable"

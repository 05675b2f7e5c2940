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
    import matplotlib  # noqa: PLC0415 - plotting only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

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
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(order) + 2), 4))
    ax.bar(range(len(order)), [counts[c] for c in order], color="#3a7ca5")
    ax.set_yscale("log")
    ax.set_xlabel(f"class (sorted by count; {len(order)} classes)")
    ax.set_ylabel("images (log scale)")
    ax.set_title(f"{len(m)} images, imbalance ratio {summary['imbalance_ratio']:.0f}:1")
    if len(order) <= 40:
        ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "class_counts.png", dpi=110)
    plt.close(fig)

    shown = order[:max_classes]
    pre = Preprocess(size=64, invert=False)
    fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.9 + 2.2, len(shown) * 0.9 + 0.3),
                             squeeze=False)
    rng = np.random.default_rng(stable_seed("sheet", seed))
    for r, cls in enumerate(shown):
        idx = [i for i, lab in enumerate(m.labels) if lab == cls]
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if idx else []
        for c in range(per_class):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(pick):
                try:
                    ax.imshow(pre(read_image(m.full_path(pick[c]))), cmap="gray", vmin=0, vmax=255)
                except ImageReadError:
                    ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=6)
            if c == 0:
                ax.set_ylabel(f"{cls}\n({counts[cls]})", rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "contact_sheet.png", dpi=90)
    plt.close(fig)
    return summary

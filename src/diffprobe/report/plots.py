"""Figures people would rather look at than read: heatmaps, confusion matrices, bars, curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def grid_heatmap(grid: list[dict], path: str | Path, *, metrics=("val_accuracy", "test_accuracy"),
                 title: str = "Linear-probe accuracy per (block, timestep)", best: dict | None = None) -> Path:
    """Block (rows, in network order) x timestep (columns) heatmaps, one panel per metric."""
    blocks = list(dict.fromkeys(g["block"] for g in grid))
    ts = sorted({g["timestep"] for g in grid})
    fig, axes = plt.subplots(1, len(metrics), figsize=(1.0 + 0.75 * len(ts) * len(metrics) + 1.5 * len(metrics),
                                                       0.9 + 0.42 * len(blocks)), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        m = np.full((len(blocks), len(ts)), np.nan)
        for g in grid:
            m[blocks.index(g["block"]), ts.index(g["timestep"])] = g[metric]
        im = ax.imshow(m * 100, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(ts)), [str(t) for t in ts])
        ax.set_yticks(range(len(blocks)), blocks)
        ax.set_xlabel("timestep t")
        ax.set_title(metric.replace("_", " "), fontsize=10)
        for i in range(len(blocks)):
            for j in range(len(ts)):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j] * 100:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] < np.nanmean(m) else "black")
        if best is not None:
            ax.add_patch(plt.Rectangle((ts.index(best["timestep"]) - 0.5, blocks.index(best["block"]) - 0.5), 1, 1,
                                       fill=False, edgecolor="red", linewidth=2))
        fig.colorbar(im, ax=ax, fraction=0.046, label="%")
    fig.suptitle(title + ("  (red: chosen on val)" if best is not None else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def confusion_plot(cm: np.ndarray, classes: list[str], path: str | Path, title: str = "Confusion matrix") -> Path:
    """Row-normalised confusion matrix; class names shown when there are few enough to read."""
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    n = len(classes)
    side = min(18, max(4, 0.22 * n + 2))
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=max(4, 9 - n // 10))
        ax.set_yticks(range(n), classes, fontsize=max(4, 9 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)

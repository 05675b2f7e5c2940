"""Figures people would rather look at than read: heatmaps, confusion matrices, bars, curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .tables import COMPARE_METRICS  # noqa: E402


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


def robustness_plot(r: dict, path: str | Path) -> Path:
    """Accuracy vs severity, one line per shift; clean accuracy and chance as reference lines."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for s, rows in r["shifts"].items():
        ax.plot([row["severity"] for row in rows], [row["accuracy"] * 100 for row in rows], marker="o", label=s)
    ax.axhline(r["clean"]["accuracy"] * 100, color="black", linestyle="--", label="clean")
    ax.axhline(r["chance_accuracy"] * 100, color="grey", linestyle=":", label="chance")
    ax.set_xlabel("severity")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_xticks(sorted({row["severity"] for rows in r["shifts"].values() for row in rows}))
    ax.set_title("Robustness to instrument-like shifts", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def image_grid(rows: list[list], path: str | Path, *, row_labels: list[str] | None = None,
               col_titles: list[str] | None = None, title: str | None = None, vmax: float = 1.0, cell: float = 1.2,
               label_width: float = 0.0, dpi: int = 100) -> Path:
    """Grey images in a grid: ``rows`` of 2-D arrays (values 0..``vmax``), ``None`` for an empty cell or a string
    written in its place (e.g. "unreadable"). ``row_labels`` beside the rows, ``col_titles`` above the columns,
    ``label_width`` inches kept for the row labels."""
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(cell * n_cols + label_width, cell * len(rows) + 0.3),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([]), ax.set_yticks([])
            image = row[j] if j < len(row) else None
            if isinstance(image, str):
                ax.text(0.5, 0.5, image, ha="center", va="center", fontsize=6)
            elif image is not None:
                ax.imshow(image, cmap="gray", vmin=0, vmax=vmax)
            else:
                ax.axis("off")
            if i == 0 and col_titles:
                ax.set_title(col_titles[j], fontsize=7)
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Path(path)


def class_counts_plot(counts: dict[str, int], path: str | Path, *, title: str) -> Path:
    """Images per class, largest first, on a log scale; class names shown when there are few enough to read."""
    order = sorted(counts, key=lambda c: -counts[c])
    fig, ax = plt.subplots(figsize=(max(6, 0.12 * len(order) + 2), 4))
    ax.bar(range(len(order)), [counts[c] for c in order], color="#3a7ca5")
    ax.set_yscale("log")
    ax.set_xlabel(f"class (sorted by count; {len(order)} classes)")
    ax.set_ylabel("images (log scale)")
    ax.set_title(title)
    if len(order) <= 40:
        ax.set_xticks(range(len(order)), order, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def compare_plot(rows: list[dict], path: str | Path, *, settings: list[str]) -> Path:
    """Grouped bars: one panel per setting, metrics along x, one bar per method (and eval)."""
    fig, axes = plt.subplots(len(settings), 1, figsize=(11, 3.2 * len(settings)), squeeze=False)
    for ax, setting in zip(axes[:, 0], settings):
        mine = [r for r in rows if r["setting"] == setting]
        width = 0.8 / max(1, len(mine))
        for k, row in enumerate(mine):
            vals = [row.get(m) for m in COMPARE_METRICS]
            vals = [np.nan if v is None else v for v in vals]
            label = row["method"] if row["eval"] == "linear probe" else f"{row['method']} ({row['eval']})"
            ax.bar(np.arange(len(COMPARE_METRICS)) + (k - (len(mine) - 1) / 2) * width, vals, width, label=label)
        ax.set_xticks(range(len(COMPARE_METRICS)), list(COMPARE_METRICS.values()))
        lowest = min([0.0] + [row[m] for row in mine for m in COMPARE_METRICS if row.get(m) is not None])
        ax.set_ylim(lowest, 1.18)  # headroom for the legend; ARI can be below 0
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(f"{setting} setting", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=min(6, len(mine)), loc="upper center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def curves_plots(r: dict, out: Path) -> None:
    """curves_compute.png and curves_labels.png: one panel per setting, one line per method (and eval); in the
    first, points whose CPU-hours are estimated (trained on a GPU) hollow."""
    n = len(r["settings"])
    methods = list(dict.fromkeys(x["method"] for x in r["rows"] + r["label_curves"]))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for name, points, xlabel in (("compute", [x for x in r["rows"] if x["cpu_hours"] is not None],
                                  "pretraining CPU-hours (hollow: estimated from the method's CPU rate)"),
                                 ("labels", r["label_curves"], "labelled training images per class")):
        fig, axes = plt.subplots(1, n, figsize=(5.5 * n + 2.8, 4), squeeze=False)
        for ax, setting in zip(axes[0], r["settings"]):
            mine = [x for x in points if x["setting"] == setting]
            for key in dict.fromkeys((x["method"], x.get("eval", "linear probe")) for x in mine):
                line = [x for x in mine if (x["method"], x.get("eval", "linear probe")) == key]
                if name == "compute":
                    line.sort(key=lambda x: x["cpu_hours"])
                    xs, ys, err = [x["cpu_hours"] for x in line], [x["accuracy"] for x in line], None
                else:  # "all" sits at the mean number of train images per class
                    xs = [x["shots"] if x["shots"] is not None else x["n_train"] / x["n_classes"] for x in line]
                    ys, err = [x["accuracy_mean"] for x in line], [x["accuracy_std"] for x in line]
                label = key[0] if key[1] == "linear probe" else f"{key[0]} ({key[1]})"
                # One colour per method, one line style per readout: the linear probe solid, the recipe's readout
                # dotted, the supervised network's own head dashed.
                color = colors[methods.index(key[0]) % len(colors)]
                style = {"linear probe": "-", "end to end": "--"}.get(key[1], ":")
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, ls=style, color=color, label=label)
                hollow = [(x["cpu_hours"], x["accuracy"]) for x in line if x.get("cpu_hours_estimated")]
                if hollow:
                    ax.scatter(*zip(*hollow), s=40, facecolors="white", edgecolors=color, zorder=3)
            ax.set_xscale("log")
            ax.set_xlabel(xlabel, fontsize=8 if name == "compute" else 10)
            ax.set_ylabel("test top-1")
            ax.set_title(f"{setting} setting", fontsize=10)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the panels, off the lines
        fig.tight_layout()
        fig.savefig(out / f"curves_{name}.png", dpi=110)
        plt.close(fig)

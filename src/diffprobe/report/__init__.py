"""Reports: tables, heatmaps, plots, Markdown."""

from .plots import confusion_plot, grid_heatmap

__all__ = ["confusion_plot", "grid_heatmap"]

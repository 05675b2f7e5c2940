"""Reports: every Markdown table (``tables``) and figure (``plots``) the library's commands write, from plain
results (dicts, arrays, images); no stage is imported, so every stage may use them. The application's own
reports (the comparison's, the study's) live beside it in ``workflows``."""

from .plots import class_counts_plot, confusion_plot, grid_heatmap, image_grid, robustness_plot
from .tables import evaluation_report, fusion_report, probe_report, shift_report, zeroshot_report

__all__ = ["class_counts_plot", "confusion_plot", "evaluation_report", "fusion_report", "grid_heatmap",
           "image_grid", "probe_report", "robustness_plot", "shift_report", "zeroshot_report"]

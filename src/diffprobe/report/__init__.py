"""Reports: every Markdown table (``tables``), figure (``plots``) and self-contained HTML page (``html``) the
commands write, the comparison's and the study's included, from plain results (dicts, arrays, images); no
stage is imported, so every stage and workflow may use them."""

from .html import markdown_page
from .plots import class_counts_plot, compare_plot, confusion_plot, curves_plots, grid_heatmap, image_grid, robustness_plot
from .tables import (compare_report, curves_report, evaluation_report, fusion_report, probe_report, shift_report,
                     study_report, zeroshot_report)

__all__ = ["class_counts_plot", "compare_plot", "compare_report", "confusion_plot", "curves_plots", "curves_report",
           "evaluation_report", "fusion_report", "grid_heatmap", "image_grid", "markdown_page", "probe_report",
           "robustness_plot", "shift_report", "study_report", "zeroshot_report"]

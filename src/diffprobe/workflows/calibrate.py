"""The ``calibrate`` command: re-fit a bundle's calibration on labelled val images (temperature, unknown
thresholds and the val confusion matrix that adjusted counting (ACC) needs; the computations are
``probe.calibration``'s); rewrites bundle.json atomically.

``run_probe`` already stores all three when it writes a bundle; this is for bundles made
before that, to adapt a bundle to a new instrument with a few labelled images of it, or for a
reading ensemble (``probe.ensemble``), which is built uncalibrated.
"""

from __future__ import annotations

from pathlib import Path

from scipy.special import softmax
from sklearn.metrics import confusion_matrix

from ..config.evaluate import CalibrateConfig
from ..data.manifest import prepare_split
from ..evaluate.crossdata import select_part
from ..probe.calibration import expected_calibration_error, fit_temperature, unknown_thresholds
from ..probe.ensemble import load_bundle
from ..utils import DiffprobeError


def calibrate_bundle(bundle_dir: str | Path, data: str | Path, *, part: str = CalibrateConfig.part,
                     accept: float = CalibrateConfig.accept, split_seed: int = CalibrateConfig.split_seed,
                     precision: str = "auto", progress: bool = True) -> dict:
    """Fit temperature, unknown thresholds and val confusion on the ``part`` of ``data`` (a split CSV,
    or a folder split as 'diffprobe split' would); update ``bundle_dir``/bundle.json (a bundle's or a reading
    ensemble's); return the new fields."""
    bundle = load_bundle(bundle_dir, precision=precision)
    m = select_part(prepare_split(data, seed=split_seed), part, data)
    m = m.subset([lab in bundle.classes for lab in m.labels])
    if len(m) == 0:
        raise DiffprobeError(f"{data}: no {part} images of the model's classes {bundle.classes[:6]} ...")
    arr = bundle.read_split(m, classes=bundle.classes, progress=progress)
    logits = bundle.logits(arr.images, arr.meta, progress=progress)
    y = arr.labels
    t = fit_temperature(logits, y)
    fields = {
        "temperature": t,
        "val_confusion": confusion_matrix(y, logits.argmax(1), labels=range(len(bundle.classes))).tolist(),
        "unknown": unknown_thresholds(logits, t, accept),
        "calibration": {"data": str(data), "part": part, "n_images": int(len(y)),
                        "ece_before": expected_calibration_error(softmax(logits, axis=1), y),
                        "ece_after": expected_calibration_error(softmax(logits / t, axis=1), y)},
    }
    bundle.update_json(fields)
    return fields


"""Size and shape of the imaged object: what resizing every crop to one square throws away.

An organism's absolute size is one of the strongest plankton cues (the 2015 NDSB winners added
size features on top of their CNNs and still gained), and a fixed-size input erases it. These
measurements are taken on the crop as imaged (after flat-fielding, before padding and resizing)
and given to the probe beside the frozen features, standardised like them.

Sizes are in the instrument's pixels: they carry over to another instrument only at the same pixel
scale, which is why adapting to a new instrument refits the probe (``diffprobe adapt``).
"""

from __future__ import annotations

import numpy as np

from .preprocess import Preprocess, border_level, flattened, object_mask

METADATA_NAMES = ("log_height", "log_width", "log_object_area", "log_object_height", "log_object_width",
                  "log_aspect", "fill", "mean_contrast", "peak_contrast")

def object_metadata(image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """Float greyscale (H, W) in [0, 1] as read -> float32 (len(METADATA_NAMES),) measurements.

    The object is ``preprocess.object_mask``: every pixel whose contrast against the background exceeds
    ``OBJECT_CONTRAST``, darker for bright-field crops (``settings.invert``), brighter for dark-field ones.
    """
    return measure_object(*flattened(image, settings))


def measure_object(image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """``object_metadata`` of a crop already flattened (``preprocess.flattened``)."""
    contrast = border_level(image) - image if settings.invert else image - border_level(image)
    mask = object_mask(image, settings.invert)
    h, w = image.shape
    area = int(mask.sum())
    if area:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        oh, ow = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        values = contrast[mask]
        mean_c, peak_c = float(values.mean()), float(np.percentile(values, 99))
    else:
        oh = ow = 0
        mean_c = peak_c = 0.0
    return np.array([np.log(h), np.log(w), np.log1p(area), np.log1p(oh), np.log1p(ow), np.log(h / w),
                     area / (h * w), mean_c, peak_c], dtype=np.float32)

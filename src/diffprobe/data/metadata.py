"""Size and shape of the imaged object: what resizing every crop to one square throws away.

An organism's absolute size is one of the strongest plankton cues (the 2015 NDSB winners added
size features on top of their CNNs and still gained), and a fixed-size input erases it. These
measurements are taken on the crop as imaged (after flat-fielding, before padding and resizing)
and given to the probe beside the frozen features, standardised like them.

Sizes are in the instrument's pixels: they carry over to another instrument only at the same pixel
scale. Adapting to a new instrument refits the probe (``diffprobe adapt``); without labels, ``rescale_sizes``
brings the sizes to the training instrument's scale, given or estimated from the new images themselves
(``estimate_scale``).
"""

from __future__ import annotations

import numpy as np

from .preprocess import Preprocess, border_level, flattened, object_mask

METADATA_NAMES = ("log_height", "log_width", "log_object_area", "log_object_height", "log_object_width",
                  "log_aspect", "fill", "mean_contrast", "peak_contrast")
# How each measurement moves when the pixel scale is multiplied by s: + power * log(s) (log lengths 1, log
# area 2, ratios and contrasts 0; log1p of an area counts as its log, exact to 1% above 100 pixels).
SCALE_POWERS = np.array([1, 1, 2, 1, 1, 0, 0, 0, 0], np.float32)


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


def rescale_sizes(meta: np.ndarray, scale: float) -> np.ndarray:
    """(N, K) measurements as if imaged with ``scale`` times as many pixels per unit length."""
    if not scale > 0:
        raise ValueError(f"the pixel scale must be a positive number, got {scale!r}")
    return (np.asarray(meta, np.float32) + SCALE_POWERS * np.float32(np.log(scale))).astype(np.float32)


def estimate_scale(meta: np.ndarray, reference_medians: np.ndarray) -> float:
    """The pixel-scale factor that brings the median lengths of ``meta`` (N, K) to ``reference_medians`` (K,):
    exp of the median, over the four log-length measurements, of the difference of medians. An estimate
    from unlabelled images: right when the new images hold organisms of about the same sizes."""
    lengths = SCALE_POWERS == 1
    diff = np.asarray(reference_medians, np.float64)[lengths] - np.median(np.asarray(meta, np.float64)[:, lengths], 0)
    return float(np.exp(np.median(diff)))

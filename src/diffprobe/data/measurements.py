"""Size and shape of the imaged object: what resizing every crop to one square throws away.

An organism's absolute size is one of the strongest plankton cues (the 2015 NDSB winners added
size features on top of their CNNs and still gained), and a fixed-size input erases it. These
measurements are taken on the crop as imaged (after flat-fielding, before padding and resizing)
and given to the probe beside the frozen features, standardised like them.

Two groups: sizes (lengths and areas, log-scaled) and the shape and texture of the organism (ratios,
moments, contrast profile: ``SHAPE_NAMES``, from scikit-image's ``regionprops``), which do not depend on the
pixel scale. A bundle records the names it reads (older bundles read ``SIZE_NAMES`` alone); every
measurement array here holds all of ``METADATA_NAMES``, and ``select_metadata`` takes a bundle's columns.

Sizes are in the instrument's pixels: they carry over to another instrument only at the same pixel
scale. Adapting to a new instrument refits the probe (``diffprobe adapt``); without labels, ``rescale_sizes``
brings the sizes to the training instrument's scale, given or estimated from the new images themselves
(``estimate_scale``).

The names here keep the word ``metadata`` where they meet what is saved and set: a bundle's ``bundle.json`` records
the measurements its head reads as ``metadata`` (their names) and ``metadata_medians``, and the fused head's
``metadata`` setting (``--metadata``) appends them to the features.
"""

from __future__ import annotations

import numpy as np

from skimage.measure import regionprops

from .preprocess import Preprocess, border_level, flattened, object_mask, organism_of

SIZE_NAMES = ("log_height", "log_width", "log_object_area", "log_object_height", "log_object_width",
              "log_aspect", "fill", "mean_contrast", "peak_contrast")
SHAPE_NAMES = ("solidity", "eccentricity", "extent", "compactness", "axis_ratio", "log_major_axis", "log_perimeter",
               "euler_number", "log_components", "largest_share", "contrast_spread", "contrast_q10", "contrast_q50",
               "contrast_q90", "hu1", "hu2", "hu3", "hu4", "hu5", "hu6", "hu7", "ring_inner", "ring_middle",
               "ring_outer")
# Only ever appended to: a bundle names the columns it reads, so older bundles keep their meaning.
METADATA_NAMES = SIZE_NAMES + SHAPE_NAMES
# How each measurement moves when the pixel scale is multiplied by s: + power * log(s) (log lengths 1, log
# area 2, ratios, moments and contrasts 0; log1p of a length or area counts as its log, exact to 1% above 100).
SCALE_POWERS = dict(zip(METADATA_NAMES, [1, 1, 2, 1, 1, 0, 0, 0, 0] + [0, 0, 0, 0, 0, 1, 1] + [0] * 17))


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
    sizes = [np.log(h), np.log(w), np.log1p(area), np.log1p(oh), np.log1p(ow), np.log(h / w), area / (h * w),
             mean_c, peak_c]
    return np.array(sizes + _shape(contrast, *organism_of(mask)), dtype=np.float32)


def _shape(contrast: np.ndarray, organism: np.ndarray, areas: np.ndarray) -> list[float]:
    """The ``SHAPE_NAMES`` of the organism (``preprocess.organism_of``: its mask and the areas of every
    component of the object mask); zeros for a crop without one."""
    if not organism.any():
        return [0.0] * len(SHAPE_NAMES)
    region = regionprops(organism.astype(np.uint8))[0]
    major = max(region.axis_major_length, 1e-3)
    perimeter = max(region.perimeter, 1.0)
    values = contrast[organism]
    peak = max(float(np.percentile(values, 99)), 1e-3)
    q10, q50, q90 = np.percentile(values, [10, 50, 90]) / peak
    hu = region.moments_hu
    hu = np.clip(-np.sign(hu) * np.log10(np.abs(hu) + 1e-12), -30, 30)  # log-scaled, sign kept (as OpenCV users do)
    # Where the organism's contrast lies: inner, middle and outer thirds of its half major axis.
    yy, xx = np.indices(contrast.shape)
    radius = np.hypot(yy - region.centroid[0], xx - region.centroid[1]) / (major / 2)
    mass = np.where(organism, np.clip(contrast, 0.0, None), 0.0)
    total = max(float(mass.sum()), 1e-6)
    rings = [float(mass[(radius >= lo) & (radius < hi)].sum()) / total for lo, hi in ((0, 1 / 3), (1 / 3, 2 / 3),
                                                                                       (2 / 3, np.inf))]
    shape = [region.solidity, region.eccentricity, region.extent, 4 * np.pi * region.area / perimeter ** 2,
             region.axis_minor_length / major, np.log1p(major), np.log1p(perimeter),
             np.clip(region.euler_number, -20, 2), np.log1p(len(areas)), areas.max() / areas.sum(),
             float(values.std()) / peak, q10, q50, q90, *hu, *rings]
    return [float(v) for v in np.nan_to_num(np.asarray(shape, np.float64))]


def select_metadata(meta: np.ndarray, names: list[str] | tuple[str, ...]) -> np.ndarray:
    """The columns ``names`` of measurements ``meta`` (N, len(METADATA_NAMES)); ``meta`` already holding exactly
    those columns (N, len(names)) is returned as it is."""
    meta = np.asarray(meta, np.float32)
    if meta.ndim != 2 or meta.shape[1] not in (len(METADATA_NAMES), len(names)):
        raise ValueError(f"object measurements must be (N, {len(METADATA_NAMES)}) (every name of "
                         f"data.measurements.METADATA_NAMES) or (N, {len(names)}); got {meta.shape}")
    return meta if meta.shape[1] == len(names) else meta[:, metadata_columns(names)]


def metadata_columns(names) -> list[int]:
    """Indices of ``names`` in ``METADATA_NAMES`` (a ``ValueError`` naming those this version does not measure)."""
    unknown = [n for n in names if n not in METADATA_NAMES]
    if unknown:
        raise ValueError(f"unknown object measurements {unknown}: made by a newer diffprobe? This one measures "
                         f"{list(METADATA_NAMES)}")
    return [METADATA_NAMES.index(n) for n in names]


def _powers(names) -> np.ndarray:
    return np.array([SCALE_POWERS[n] for n in names], np.float32)


def rescale_sizes(meta: np.ndarray, scale: float, names=METADATA_NAMES) -> np.ndarray:
    """(N, K) measurements ``names`` as if imaged with ``scale`` times as many pixels per unit length."""
    if not scale > 0:
        raise ValueError(f"the pixel scale must be a positive number, got {scale!r}")
    return (np.asarray(meta, np.float32) + _powers(names) * np.float32(np.log(scale))).astype(np.float32)


def estimate_scale(meta: np.ndarray, reference_medians: np.ndarray, names=METADATA_NAMES) -> float:
    """The pixel-scale factor that brings the median lengths of ``meta`` (N, K: the measurements ``names``) to
    ``reference_medians`` (K,): exp of the median, over the log-length measurements, of the difference of
    medians. An estimate from unlabelled images: right when the new images hold organisms of about the same sizes."""
    lengths = _powers(names) == 1
    diff = np.asarray(reference_medians, np.float64)[lengths] - np.median(np.asarray(meta, np.float64)[:, lengths], 0)
    return float(np.exp(np.median(diff)))

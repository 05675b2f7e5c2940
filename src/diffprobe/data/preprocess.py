"""Preprocessing fit for plankton crops.

Crops vary from 30 to 340 px a side and in aspect ratio. Squashing them would distort the
shapes that separate fine-grained classes, so we keep the aspect ratio, pad to a square
with the image's own background level (estimated from its border), then resize.

Lamps age and instruments differ in gain: a crop's grey levels are its transmittance times
an illumination field. ``flatfield`` divides that field out (estimated from the border as a
plane: gain plus a linear gradient), so a dimmer or unevenly lit image preprocesses to the
same input as the original; without it a 10% gain change alone ruins a trained probe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage

from ..base import DiffprobeError

if TYPE_CHECKING:
    from ..config.pretrain import BaselineConfig, PretrainConfig, RCDiTPretrainConfig


@dataclass(frozen=True)
class Preprocess:
    """Settings saved beside every model and bundle so inference sees what training saw.

    size:      output side in pixels (32, 48, 64, ...).
    invert:    flip intensities so the (light) background becomes 0, organism bright.
    flatfield: divide by the illumination field estimated from the border (a plane), so the
               background is 1 (0 once inverted) whatever the lamp's gain and gradient; with
               ``invert=False`` (dark-field instruments) the field is subtracted instead.
               Settings saved before this option existed read as ``flatfield=False``.
    polarity:  ``fixed`` (``invert`` as set) or ``auto``: each image's own background decides, so
               bright-field crops (dark organism on a light field) are inverted and dark-field ones
               (bright organism on black, e.g. a Scripps Plankton Camera) are not, and both reach the
               model as a bright object on 0. Settings saved before this option existed read as ``fixed``.
    crop:      cut the (flattened) crop down to the organism (``object_box``: its connected components
               against the background, plus a margin), so an image framed loosely by another instrument
               reaches the model framed as tightly as a segmented NDSB crop; scale bars and label strokes
               printed in the frame (``instrument_marks``) are painted over with the background first.
               Saved only when true.
    """

    size: int = 32
    invert: bool = True
    flatfield: bool = True
    polarity: str = "fixed"
    crop: bool = False

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 8 <= self.size <= 1024:
            raise ValueError(f"image size must be an integer between 8 and 1024, got {self.size!r}")
        for name in ("invert", "flatfield", "crop"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.polarity not in POLARITIES:
            raise ValueError(f"polarity must be one of {POLARITIES}, got {self.polarity!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["polarity"] == "fixed":  # as every model saved before polarity existed: their files stay the same
            del d["polarity"]
        if not d["crop"]:
            del d["crop"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        unknown = set(d) - {"size", "invert", "flatfield", "polarity", "crop"}
        if unknown:
            raise ValueError(f"unknown preprocessing settings {sorted(unknown)}; known: size, invert, flatfield, "
                             f"polarity, crop")
        return cls(**{"flatfield": False, **d})  # models saved before flat-fielding existed were trained without

    @classmethod
    def for_training(cls, cfg: PretrainConfig | RCDiTPretrainConfig | BaselineConfig) -> "Preprocess":
        """What a trainer's settings ask of the images it trains on (and save beside the model as its
        ``preprocess.json``): the model's image size, ``invert`` and ``flatfield``."""
        return cls(size=cfg.image_size, invert=cfg.invert, flatfield=cfg.flatfield)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return preprocess(image, self)

    def for_image(self, image: np.ndarray) -> "Preprocess":
        """The settings for this image: with ``polarity="auto"``, ``invert`` follows its background."""
        if self.polarity == "fixed":
            return self
        return replace(self, invert=bright_field(image), polarity="fixed")


POLARITIES = ("fixed", "auto")
# Contrast against the background (0..1 of the grey range) counted as object; plankton crops are high contrast.
OBJECT_CONTRAST = 0.1
# Components smaller than this share of the largest one are specks (marine snow, noise), not the organism.
MIN_COMPONENT_SHARE = 0.05
# Margin added around the organism's box, as a share of its longer side: segmented NDSB crops frame the
# object with a few pixels' margin (median object box about 0.7 of the crop's side).
CROP_MARGIN = 0.15
# A printed mark (scale bar, label stroke): a box filled to MARK_FILL, its long side MARK_ASPECT times its short
# one and MARK_LENGTH of the crop's longer side, its contrast at least MARK_CONTRAST and flat to MARK_FLATNESS
# (see instrument_marks): no component of 3,000 NDSB crops nor of 2,426 Scripps Plankton Camera ones passes all
# five.
MARK_FILL, MARK_ASPECT, MARK_LENGTH, MARK_CONTRAST, MARK_FLATNESS = 0.9, 3.0, 0.1, 0.5, 0.05
# Raised whenever the crop's output changes for some image (2: printed marks painted over), so caches of
# cropped images built by older code are rebuilt.
CROP_REVISION = 2


def bright_field(image: np.ndarray) -> bool:
    """A light background (border median above mid-grey): a bright-field crop, organism darker than it."""
    return border_level(image) > 0.5


def border_level(image: np.ndarray) -> float:
    """Median of the outermost pixels: the background level of a crop."""
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(np.median(border))


def illumination_plane(image: np.ndarray, *, rounds: int = 4) -> np.ndarray:
    """The background level as a plane a + b x + c y, fitted to the border pixels.

    A robust fit: start from the border's median, then refit by least squares on the pixels
    within 3 MADs of the current plane, so an organism touching (or covering) an edge is left
    out. Exact for a linear illumination gradient.
    """
    h, w = image.shape
    x, y = np.arange(w) - (w - 1) / 2, np.arange(h) - (h - 1) / 2
    # The border in row-major order: top row, the two sides of the middle rows, bottom row.
    mid = np.repeat(y[1:-1], 2)
    ex = np.concatenate([x, np.tile([x[0], x[-1]], h - 2), x])
    ey = np.concatenate([np.full(w, y[0]), mid, np.full(w, y[-1])])
    values = np.concatenate([image[0], image[1:-1][:, [0, -1]].ravel(), image[-1]]).astype(np.float64)
    design = np.stack([np.ones(values.size), ex, ey], 1)
    coef, kept = np.array([np.median(values), 0.0, 0.0]), None
    for _ in range(rounds):
        res = values - design @ coef
        keep = np.abs(res - np.median(res)) <= 3 * max(float(np.median(np.abs(res - np.median(res)))), 0.01)
        if keep.sum() < 3 or (kept is not None and np.array_equal(keep, kept)):
            break  # too few pixels left, or the same pixels as last round: the same fit again
        kept = keep
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
    return (coef[0] + coef[1] * x[None, :] + coef[2] * y[:, None]).astype(np.float32)


def flatfield(image: np.ndarray, invert: bool) -> np.ndarray:
    """Bright field: image / plane (background -> 1); dark field: image - plane (background -> 0)."""
    plane = illumination_plane(image)
    if invert:
        return np.clip(image / np.maximum(plane, 1e-2), 0.0, 1.0)
    return np.clip(image - plane, 0.0, 1.0)


def pad_to_square(image: np.ndarray, fill: float) -> np.ndarray:
    h, w = image.shape
    side = max(h, w)
    out = np.full((side, side), fill, dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def object_mask(image: np.ndarray, invert: bool) -> np.ndarray:
    """(H, W) bool: pixels whose contrast against the background (the border's median) exceeds
    ``OBJECT_CONTRAST``, darker than it for bright-field crops (``invert``), brighter for dark-field ones."""
    background = border_level(image)
    return (background - image if invert else image - background) > OBJECT_CONTRAST


def organism_mask(image: np.ndarray, invert: bool) -> np.ndarray:
    """(H, W) bool: the union of the object mask's 8-connected components that reach ``MIN_COMPONENT_SHARE``
    of the largest one (specks and distant debris left out; the limbs of one organism, split by a faint
    joint, kept). All False when the crop holds no object."""
    return organism_of(object_mask(image, invert))[0]


def organism_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``organism_mask`` of an object mask already computed, and the areas of all its components (one
    labelling serves both: the object measurements count the components too)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return labels > 0, np.zeros(0, np.int64)
    areas = np.bincount(labels.ravel())[1:]
    return np.isin(labels, 1 + np.flatnonzero(areas >= MIN_COMPONENT_SHARE * areas.max())), areas


def instrument_marks(image: np.ndarray, invert: bool) -> np.ndarray:
    """(H, W) bool: the object mask's components that an instrument printed, not imaged: scale bars and the
    strokes of their labels. Each is a strong (mean contrast ``MARK_CONTRAST``) and flat (contrast spread, 10th to
    90th percentile, within ``MARK_FLATNESS``) elongated (``MARK_ASPECT``) axis-aligned bar filling ``MARK_FILL`` of
    its box, at least ``MARK_LENGTH`` of the crop's longer side long: printed in black or white, where an
    organism's pixels vary in contrast and none fills its box like a ruled line."""
    contrast = border_level(image) - image if invert else image - border_level(image)
    labels, _ = ndimage.label(contrast > OBJECT_CONTRAST, structure=np.ones((3, 3), bool))
    marks = np.zeros(image.shape, bool)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        component = labels[box] == k
        side = sorted(component.shape)
        values = contrast[box][component]
        if (component.sum() >= MARK_FILL * component.size and side[1] >= MARK_ASPECT * side[0]
                and side[1] >= MARK_LENGTH * max(image.shape) and values.mean() >= MARK_CONTRAST
                and np.subtract(*np.percentile(values, [90, 10])) <= MARK_FLATNESS):
            marks[box] |= component
    return marks


def object_box(image: np.ndarray, invert: bool) -> tuple[slice, slice]:
    """The organism's box in a flattened crop, with a ``CROP_MARGIN`` margin, clipped to the crop.

    The organism is ``organism_mask``. A crop with no object keeps its full frame.
    """
    keep = organism_mask(image, invert)
    if not keep.any():
        return slice(0, image.shape[0]), slice(0, image.shape[1])
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    margin = int(round(CROP_MARGIN * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)))
    h, w = image.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, w)))


def flattened(image: np.ndarray, settings: Preprocess) -> tuple[np.ndarray, Preprocess]:
    """The crop with its illumination divided out (when ``settings.flatfield``) and cut to the organism (when
    ``settings.crop``), and the settings for this image (polarity resolved): the common first step of
    preprocessing and of the object measurements."""
    settings = settings.for_image(image)
    image = image.astype(np.float32)
    if settings.flatfield:
        image = flatfield(image, settings.invert)
    if settings.crop:
        marks = instrument_marks(image, settings.invert)
        if marks.any():  # printed marks are not part of the organism: paint them over with the background
            image = np.where(ndimage.binary_dilation(marks), border_level(image), image).astype(np.float32)
        image = image[object_box(image, settings.invert)]
    return image, settings


def preprocess(image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """Float greyscale (H, W) in [0, 1] -> uint8 (size, size), aspect kept, background padded."""
    return model_input(*flattened(image, settings))


def model_input(image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """A flattened crop (``flattened``) -> uint8 (size, size): padded to a square, resized, inverted."""
    square = pad_to_square(image, border_level(image))
    resized = Image.fromarray(square).resize(
        (settings.size, settings.size), Image.Resampling.BOX if square.shape[0] > settings.size else Image.Resampling.BILINEAR
    )
    out = np.clip(np.asarray(resized), 0.0, 1.0)
    if settings.invert:
        out = 1.0 - out
    return np.round(out * 255.0).astype(np.uint8)


def dihedral(images: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` (0..7) of (B, S, S) images: 0 identity, 1 left-right mirror, 2 half turn, 3 up-down
    mirror (half turn, then mirrored), 4 and 5 quarter turns, 6 and 7 the diagonal mirrors."""
    if not 0 <= view < 8:
        raise DiffprobeError(f"view must be between 0 and 7, got {view}")
    turned = np.rot90(images, k=(0, 0, 2, 2, 1, 3, 1, 3)[view], axes=(1, 2))
    return np.ascontiguousarray(turned[:, :, ::-1] if view in (1, 3, 6, 7) else turned)

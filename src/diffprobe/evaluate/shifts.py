"""Shift suite: how accuracy degrades under instrument-like changes of the images.

Each shift is applied to the raw image (float greyscale in [0, 1] as ``read_image`` returns it,
at the instrument's own resolution) *before* the bundle's preprocessing, the way a different
camera, a dirty lens or a new compression setting would change it. Severities 1 (mild) to 5
(severe); the random ones (noise, illumination direction) are seeded per (seed, shift,
severity, file), so the same command gives the same numbers.

==============  ===========================================================  ======================
shift           what it imitates                                             severity 1 .. 5
==============  ===========================================================  ======================
defocus         out-of-focus optics: Gaussian blur                           sigma 1, 1.5, 2, 3, 4 px
noise           sensor noise: additive Gaussian noise                        std 0.03 .. 0.25
contrast        weaker contrast (turbid water, lamp ageing), towards the     contrast x0.7 .. x0.15
                background level
illumination    dimmer and uneven lighting: gain plus a linear gradient      gain 0.9 .. 0.5
                in a random direction                                        gradient 0.05 .. 0.25
resolution      a coarser sensor: downsample then upsample back              factor 1.5, 2, 3, 4, 6
jpeg            lossy JPEG compression                                       quality 40, 25, 15, 10, 5
margin          looser framing by another segmentation: the crop grown with   side x1.25, 1.5, 2, 2.5, 3
                background on every side, the organism off centre
texture         a textured field instead of a clean one: smooth random        amplitude 0.03 .. 0.2
                background structure (out-of-focus particles, gel, fibres)
overlay         a scale bar and a label burnt into the frame, as some         bar 0.2 .. 0.6 of the width
                instruments and exports do
==============  ===========================================================  ======================

``margin`` changes the crop's shape (it is what another instrument's crops look like); the others keep it.

The ``shift`` command (a bundle's accuracy under every shift and severity, its report and figures) is
``workflows.shifts.run_shift_suite``.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..config.evaluate import SEVERITIES
from ..data.preprocess import border_level
from ..utils import DiffprobeError, stable_seed

# Parameter of each shift at severities 1..5 (see the module docstring).
LEVELS: dict[str, tuple[float, ...]] = {
    "defocus": (1.0, 1.5, 2.0, 3.0, 4.0),
    "noise": (0.03, 0.06, 0.1, 0.15, 0.25),
    "contrast": (0.7, 0.5, 0.35, 0.25, 0.15),
    "illumination": (0.9, 0.8, 0.7, 0.6, 0.5),
    "resolution": (1.5, 2.0, 3.0, 4.0, 6.0),
    "jpeg": (40, 25, 15, 10, 5),
    "margin": (1.25, 1.5, 2.0, 2.5, 3.0),
    "texture": (0.03, 0.06, 0.1, 0.15, 0.2),
    "overlay": (0.2, 0.3, 0.4, 0.5, 0.6),
}
UNITS = {"defocus": "sigma {} px", "noise": "std {}", "contrast": "x{}", "illumination": "gain {}",
         "resolution": "1/{} resolution", "jpeg": "quality {}", "margin": "side x{}", "texture": "amplitude {}",
         "overlay": "bar {} of width"}


def _defocus(img, level, rng):
    return gaussian_filter(img, sigma=level, mode="nearest")


def _noise(img, level, rng):
    return img + rng.normal(0.0, level, img.shape)


def _contrast(img, level, rng):
    bg = border_level(img)
    return bg + (img - bg) * level


def _illumination(img, level, rng):
    h, w = img.shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (np.cos(angle) * (xx / max(1, w - 1) - 0.5) + np.sin(angle) * (yy / max(1, h - 1) - 0.5)) * 2
    return img * (level + (1 - level) / 2 * ramp)


def _resolution(img, level, rng):
    h, w = img.shape
    small = Image.fromarray(img.astype(np.float32)).resize((max(2, round(w / level)), max(2, round(h / level))),
                                                           Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


def _jpeg(img, level, rng):
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)).save(buf, "JPEG", quality=int(level))
    return np.asarray(Image.open(buf), dtype=np.float32) / 255.0


def _margin(img, level, rng):
    h, w = img.shape
    out = np.full((round(h * level), round(w * level)), border_level(img), np.float32)
    top, left = rng.integers(0, out.shape[0] - h + 1), rng.integers(0, out.shape[1] - w + 1)
    out[top:top + h, left:left + w] = img
    return out


def _texture(img, level, rng):
    field = gaussian_filter(rng.normal(0.0, 1.0, img.shape), sigma=max(1.0, min(img.shape) / 12), mode="wrap")
    return img + level * field / max(float(np.abs(field).max()), 1e-6)


def _overlay(img, level, rng):
    h, w = img.shape
    out = img.copy()
    value = 0.0 if border_level(img) > 0.5 else 1.0  # dark marks on a light field, light ones on a dark field
    thick = max(1, round(0.03 * h))
    row, length = h - 2 * thick - 1, max(2, round(level * w))
    out[row:row + thick, w - length - thick:w - thick] = value  # the scale bar, bottom right
    for k in range(max(1, round(level * 10))):  # a label: short strokes, top left
        x = thick + 3 * k * thick
        if x + thick <= w:
            out[thick:thick + 4 * thick, x:x + thick] = value
    return out


SHIFTS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "defocus": _defocus, "noise": _noise, "contrast": _contrast, "illumination": _illumination,
    "resolution": _resolution, "jpeg": _jpeg, "margin": _margin, "texture": _texture, "overlay": _overlay,
}
# Shifts that change the crop's shape.
RESHAPING = ("margin",)


def apply_shift(image: np.ndarray, shift: str, severity: int, *, seed: int = 0, key: str = "") -> np.ndarray:
    """Float greyscale (H, W) in [0, 1] -> the shifted image in [0, 1], same shape except for ``RESHAPING``.

    ``key`` (e.g. the file path) and ``seed`` fix the randomness of noise and illumination.
    """
    if shift not in SHIFTS:
        raise DiffprobeError(f"unknown shift {shift!r}; choose from {list(SHIFTS)}")
    if severity not in SEVERITIES:
        raise DiffprobeError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    rng = np.random.default_rng(stable_seed("shift", seed, shift, severity, key))
    out = SHIFTS[shift](np.asarray(image, dtype=np.float32), LEVELS[shift][severity - 1], rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)

"""Preprocessing fit for plankton crops.

Crops vary from 30 to 340 px a side and in aspect ratio. Squashing them would distort the
shapes that separate fine-grained classes, so we keep the aspect ratio, pad to a square
with the image's own background level (estimated from its border), then resize.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """Settings saved beside every model and bundle so inference sees what training saw.

    size:   output side in pixels (32, 48, 64, ...).
    invert: flip intensities so the (light) background becomes 0, organism bright.
    """

    size: int = 32
    invert: bool = True

    def __post_init__(self):
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 8 <= self.size <= 1024:
            raise ValueError(f"image size must be an integer between 8 and 1024, got {self.size!r}")
        if not isinstance(self.invert, bool):
            raise ValueError(f"invert must be true or false, got {self.invert!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        unknown = set(d) - {"size", "invert"}
        if unknown:
            raise ValueError(f"unknown preprocessing settings {sorted(unknown)}; known: size, invert")
        return cls(**d)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return preprocess(image, self)


def border_level(image: np.ndarray) -> float:
    """Median of the outermost pixels: the background level of a crop."""
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float(np.median(border))


def pad_to_square(image: np.ndarray, fill: float) -> np.ndarray:
    h, w = image.shape
    side = max(h, w)
    out = np.full((side, side), fill, dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = image
    return out


def preprocess(image: np.ndarray, settings: Preprocess) -> np.ndarray:
    """Float greyscale (H, W) in [0, 1] -> uint8 (size, size), aspect kept, background padded."""
    square = pad_to_square(image.astype(np.float32), border_level(image))
    resized = Image.fromarray(square).resize(
        (settings.size, settings.size), Image.Resampling.BOX if square.shape[0] > settings.size else Image.Resampling.BILINEAR
    )
    out = np.clip(np.asarray(resized), 0.0, 1.0)
    if settings.invert:
        out = 1.0 - out
    return np.round(out * 255.0).astype(np.uint8)

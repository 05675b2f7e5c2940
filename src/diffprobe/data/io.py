"""Robust image reading: any common format and bit depth in, a float greyscale array out.

Field data is never clean, so every failure becomes an ``ImageReadError`` whose message says
what is wrong with which file; callers skip and report instead of crashing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm")
# Above this many pixels an image is decoded at reduced scale (JPEG draft) or refused,
# so a 20000 x 20000 file cannot exhaust memory.
MAX_PIXELS = 40_000_000
# Largest side we ever need: crops are resized to <= 256 px anyway.
DRAFT_SIDE = 1024


class ImageReadError(Exception):
    """An image that cannot be used; ``str(err)`` is the reason, ``err.path`` the file."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(reason)
        self.path = str(path)
        self.reason = reason


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def to_grey(im: Image.Image) -> np.ndarray:
    """Convert any PIL mode to float32 greyscale in [0, 1], keeping 16-bit precision."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if mode == "I":
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        return (np.clip(a, 0, hi) / hi).astype(np.float32)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if not np.isfinite(lo) or not np.isfinite(hi):
            raise ValueError("float image holds NaN or inf")
        return np.zeros_like(a) if hi == lo else (a - lo) / (hi - lo)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Transparent pixels become white, the usual background of shadowgraph crops.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if mode != "L":
        im = im.convert("RGB").convert("L")
    return np.asarray(im, dtype=np.float32) / 255.0


def read_image(path: str | Path) -> np.ndarray:
    """Read one image as a float32 greyscale array in [0, 1], shape (H, W).

    Raises ``ImageReadError`` naming the reason for empty, truncated, corrupt, non-image,
    unreadable, too large or degenerate files.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ImageReadError(path, f"cannot access file ({e.strerror or e})") from None
    if size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, before decoding
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > MAX_PIXELS:
                        if im.format != "JPEG":
                            raise ImageReadError(
                                path, f"image too large ({w} x {h} px); downscale it below {MAX_PIXELS:,} pixels")
                        im.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
                    im.seek(0)
                    im.load()
                    arr = to_grey(im)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (unknown or corrupt format)") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageReadError(path, f"corrupt or truncated image ({e})") from None
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ImageReadError(path, f"degenerate image of shape {arr.shape}; need at least 2 x 2 pixels")
    return arr

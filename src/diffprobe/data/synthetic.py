"""Procedural, seeded synthetic "plankton" images for the demo and the tests.

The real data (NDSB, in-situ shadowgraph crops) is large and not always at hand, so this
module draws look-alikes: a dark organism on a light, slightly noisy background, 8-bit
greyscale, cropped tightly around the organism so that crop size and aspect ratio vary
(which exercises pad-to-square and resize downstream).

Classes are named ``family_variant`` like NDSB. Each family is one morphology, and its two
variants differ in one subtle but learnable trait, so that the set behaves like a small
fine-grained problem rather than a trivial one:

=============================  =============================================
``elongated_thin`` / ``_thick``  rod, width/length ratio ~0.13 vs ~0.27
``spiny_short`` / ``_long``      round body with radial spines, spine length
``chain_three`` / ``_five``      chain of touching discs, number of discs
``appendage_two`` / ``_four``    oval body with 2 vs 4 thin appendages
``ring_thin`` / ``_thick``       hollow ring, wall thickness (not in defaults)
=============================  =============================================

Everything is deterministic: each image comes from its own generator seeded by
``(seed, class name, image index)``, so adding, removing or reordering classes, or changing
the number of images, never changes the images that remain.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..config.data import SynthConfig

DEFAULT_CLASSES: tuple[str, ...] = (
    "elongated_thin",
    "elongated_thick",
    "spiny_short",
    "spiny_long",
    "chain_three",
    "chain_five",
    "appendage_two",
    "appendage_four",
)
# Optional extra family, available by name but kept out of the defaults.
ALL_CLASSES: tuple[str, ...] = DEFAULT_CLASSES + ("ring_thin", "ring_thick")

# Shapes are drawn at this multiple of the output resolution and box-downsampled,
# which gives anti-aliased edges and sub-pixel-thin appendages for free.
_SS = 2

# A shape function gets (draw, rng, variant, transform) and draws into an 8-bit mask in
# which 255 means opaque organism and lower values translucent parts. Lengths are in
# "units": one unit is one output pixel at size=64 (before scale jitter).
_Transform = Callable[[np.ndarray], list]


def _ellipse(cx: float, cy: float, a: float, b: float, n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def _elongated(draw: ImageDraw.ImageDraw, rng: np.random.Generator, variant: str, tf: _Transform) -> None:
    length = rng.uniform(38.0, 50.0)
    # The only sibling difference: width relative to length (ranges nearly touch).
    ratio = rng.uniform(0.09, 0.17) if variant == "thin" else rng.uniform(0.21, 0.32)
    width = length * ratio
    # Superellipse: exponent 2 is an ellipse, larger is a blunt-ended rod.
    p = rng.uniform(2.0, 4.0)
    t = np.linspace(0.0, 2.0 * math.pi, 64, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = 0.5 * length * np.sign(c) * np.abs(c) ** (2.0 / p)
    y = 0.5 * width * np.sign(s) * np.abs(s) ** (2.0 / p)
    # Gentle banana bend, as real rods (chaetognaths, trichodesmium) are rarely straight.
    bend = rng.uniform(-0.12, 0.12) * length

    def bent(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return np.stack([xs, ys + bend * (2.0 * xs / length) ** 2], axis=1)

    draw.polygon(tf(bent(x, y)), fill=255)
    if rng.random() < 0.6:
        # Lighter inner region (gut): organisms are partly translucent in shadowgraphs.
        draw.polygon(tf(bent(0.7 * x, 0.4 * y)), fill=int(rng.integers(150, 230)))


def _spiny(draw: ImageDraw.ImageDraw, rng: np.random.Generator, variant: str, tf: _Transform) -> None:
    r = rng.uniform(9.0, 12.0)
    ecc = rng.uniform(0.85, 1.0)
    n = int(rng.integers(8, 15))
    angles = 2.0 * math.pi * np.arange(n) / n + rng.uniform(0, 2 * math.pi) + rng.normal(0.0, 0.12, n)
    # The only sibling difference: spine length relative to the body radius.
    rel = rng.uniform(0.25, 0.5) if variant == "short" else rng.uniform(0.85, 1.3)
    base_w = rng.uniform(1.6, 2.6)
    for ang in angles:
        d = np.array([math.cos(ang), math.sin(ang) * ecc])
        d /= np.linalg.norm(d)
        perp = np.array([-d[1], d[0]])
        root = 0.85 * r * np.array([math.cos(ang), math.sin(ang) * ecc])
        tip = root + d * (0.15 * r + r * rel * rng.uniform(0.85, 1.15))
        draw.polygon(tf(np.stack([root + perp * base_w / 2, tip, root - perp * base_w / 2])), fill=255)
    draw.polygon(tf(_ellipse(0.0, 0.0, r, r * ecc)), fill=255)
    draw.polygon(tf(_ellipse(rng.uniform(-1, 1), rng.uniform(-1, 1), 0.6 * r, 0.6 * r * ecc)),
                 fill=int(rng.integers(120, 210)))


def _chain(draw: ImageDraw.ImageDraw, rng: np.random.Generator, variant: str, tf: _Transform) -> None:
    n = 3 if variant == "three" else 5  # the only sibling difference
    r = rng.uniform(6.0, 7.5)
    spacing = rng.uniform(1.7, 1.9) * r  # < 2r, so neighbouring discs touch/overlap
    curve = rng.uniform(-0.012, 0.012)  # chains drift along a gentle arc
    xs = (np.arange(n) - (n - 1) / 2.0) * spacing
    ys = curve * xs**2
    radii = r * rng.uniform(0.92, 1.08, n)
    for x, y, rr in zip(xs, ys, radii):
        draw.polygon(tf(_ellipse(x, y, rr, rr * rng.uniform(0.9, 1.0), 32)), fill=255)
    # Translucent cell interiors (diatom chains): drawn after all rims, they stay inside them.
    for x, y, rr in zip(xs, ys, radii):
        draw.polygon(tf(_ellipse(x, y, 0.6 * rr, 0.55 * rr, 24)), fill=int(rng.integers(110, 200)))


def _appendage(draw: ImageDraw.ImageDraw, rng: np.random.Generator, variant: str, tf: _Transform,
               scale: float) -> None:
    a = rng.uniform(12.0, 16.0)
    b = a * rng.uniform(0.45, 0.6)
    body = _ellipse(0.0, 0.0, a, b)
    body[:, 1] *= 1.0 + 0.18 * body[:, 0] / a  # egg shape: broader at the front (+x)
    draw.polygon(tf(body), fill=255)
    draw.polygon(tf(_ellipse(-0.1 * a, 0.0, 0.55 * a, 0.45 * b)), fill=int(rng.integers(140, 220)))
    width = max(1, round(rng.uniform(1.3, 1.9) * scale * _SS))
    # Front pair (antennae) in both variants; the "four" variant adds a swept-back rear pair.
    pairs = [(0.8 * a, 0.3 * b, rng.uniform(25.0, 45.0))]
    if variant == "four":
        pairs.append((-0.1 * a, 0.85 * b, rng.uniform(110.0, 140.0)))
    for ax, ay, deg in pairs:
        length = a * rng.uniform(0.9, 1.3)
        bend = rng.uniform(0.05, 0.25)
        for side in (1.0, -1.0):
            ang = math.radians(deg + rng.normal(0.0, 5.0)) * side
            d = np.array([math.cos(ang), math.sin(ang)])
            perp = np.array([-d[1], d[0]]) * side
            p0 = np.array([ax, ay * side])
            # Three-point polyline bowed outwards: appendages are curved, not straight.
            pts = np.stack([p0, p0 + d * length * 0.5 + perp * length * bend * 0.5, p0 + d * length - perp * length * bend * 0.2])
            draw.line(tf(pts), fill=255, width=width, joint="curve")


def _ring(draw: ImageDraw.ImageDraw, rng: np.random.Generator, variant: str, tf: _Transform) -> None:
    r = rng.uniform(12.0, 16.0)
    ecc = rng.uniform(0.8, 1.0)
    rel = rng.uniform(0.12, 0.2) if variant == "thin" else rng.uniform(0.3, 0.45)  # wall thickness
    draw.polygon(tf(_ellipse(0.0, 0.0, r, r * ecc)), fill=255)
    inner = 1.0 - rel
    draw.polygon(tf(_ellipse(0.0, 0.0, r * inner, r * ecc * inner)), fill=int(rng.integers(0, 40)))


_FAMILIES = {"elongated": _elongated, "spiny": _spiny, "chain": _chain, "appendage": _appendage, "ring": _ring}


def _check_class(class_name: str) -> tuple[str, str]:
    if class_name not in ALL_CLASSES:
        raise ValueError(f"unknown synthetic class {class_name!r}; valid classes: {', '.join(ALL_CLASSES)}")
    family, variant = class_name.split("_", 1)
    return family, variant


def _fit_axis(obj: int, size: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """Choose one output side and where the organism goes on it.

    Returns (side, offset, cut): the organism of extent ``obj`` starts at ``offset`` in an
    output of length ``side``; ``cut`` pixels are trimmed from its start when it is too big.
    """
    lo, hi = max(2, round(0.6 * size)), max(2, round(1.3 * size))
    side = int(np.clip(obj + round(rng.uniform(0.08, 0.35) * size), lo, hi))
    if obj > side:  # rare: organism larger than the biggest crop, keep its middle
        return side, 0, (obj - side) // 2
    # Position jitter, but stay roughly centred like segmentation-based crops.
    return side, int(round((side - obj) * rng.uniform(0.25, 0.75))), 0


def render(class_name: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Draw one image of ``class_name``: uint8 (H, W), dark organism on a light background.

    ``size`` sets the nominal scale; each side ends up between 0.6 and 1.3 times it.
    Raises ValueError naming the valid classes when ``class_name`` is unknown.
    """
    family, variant = _check_class(class_name)
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    scale = size / 64.0 * rng.uniform(0.88, 1.12)  # scale jitter
    unit = scale * _SS
    canvas = int(math.ceil(2.0 * size * _SS))  # roomy: the largest organism is ~1.3 * size
    theta = rng.uniform(0.0, 2.0 * math.pi)  # random orientation
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) * unit
    centre = canvas / 2.0

    def tf(pts: np.ndarray) -> list:
        return [tuple(p) for p in (np.asarray(pts) @ rot.T + centre).tolist()]

    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    if family == "appendage":
        _appendage(draw, rng, variant, tf, scale)
    else:
        _FAMILIES[family](draw, rng, variant, tf)

    # Tight crop around the organism at the supersampled scale, aligned to whole output pixels.
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, _SS, _SS)
    x0, y0 = x0 // _SS * _SS, y0 // _SS * _SS
    x1, y1 = -(-x1 // _SS) * _SS, -(-y1 // _SS) * _SS
    small = mask.crop((x0, y0, x1, y1)).resize(((x1 - x0) // _SS, (y1 - y0) // _SS), Image.Resampling.BOX)
    obj = np.asarray(small, dtype=np.float32) / 255.0
    oh, ow = obj.shape
    h, oy, cy = _fit_axis(oh, size, rng)
    w, ox, cx = _fit_axis(ow, size, rng)
    obj = obj[cy : cy + h, cx : cx + w]
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[oy : oy + obj.shape[0], ox : ox + obj.shape[1]] = obj

    # Uneven pigmentation: low-frequency noise lightens parts of the organism.
    tex = np.asarray(Image.fromarray(rng.random((4, 4), dtype=np.float32))
                     .resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    alpha *= 1.0 - rng.uniform(0.0, 0.3) * tex
    # Slight optical blur of the shadowgraph (PIL blurs 8-bit images only; 1/255 steps are plenty).
    alpha8 = Image.fromarray(np.rint(alpha * 255.0).astype(np.uint8))
    alpha8 = alpha8.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * size / 64.0))
    alpha = np.asarray(alpha8, dtype=np.float32) / 255.0

    # Light background with a faint illumination gradient, then the organism's shadow.
    bg = rng.uniform(232.0, 248.0)
    gy, gx = rng.uniform(-4.0, 4.0, 2)
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    background = bg + gy * yy + gx * xx
    dark = rng.uniform(5.0, 60.0)
    img = background + alpha * (dark - background)
    img += rng.normal(0.0, rng.uniform(1.0, 3.0), (h, w)).astype(np.float32)  # sensor noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def class_counts(n_per_class: int, n_classes: int, long_tail: bool = False, imbalance: float = 10.0) -> list[int]:
    """Images per class: all ``n_per_class``, or with ``long_tail`` a geometric decay.

    The long tail runs from ``n_per_class`` (first class) down to
    ``max(3, n_per_class / imbalance)`` (last class), like the skewed NDSB class sizes.
    """
    if n_per_class < 1 or n_classes < 1:
        raise ValueError(f"n_per_class and n_classes must be >= 1, got {n_per_class} and {n_classes}")
    if not long_tail or n_classes == 1:
        return [int(n_per_class)] * n_classes
    if imbalance < 1.0:
        raise ValueError(f"imbalance must be >= 1, got {imbalance}")
    tail = min(float(n_per_class), max(3.0, n_per_class / imbalance))
    ratio = (tail / n_per_class) ** (1.0 / (n_classes - 1))
    return [max(1, int(round(n_per_class * ratio**i))) for i in range(n_classes)]


def _image_rng(seed: int, class_name: str, index: int) -> np.random.Generator:
    # Keyed by the class *name* (a stable CRC, unlike hash()), so that a class's images do
    # not depend on which other classes are generated or in which order.
    return np.random.default_rng([int(seed), zlib.crc32(class_name.encode()), int(index)])


def _plan(n_per_class: int, classes: Sequence[str] | None, long_tail: bool, imbalance: float):
    names = list(DEFAULT_CLASSES if classes is None else classes)
    if not names:
        raise ValueError("classes must not be empty")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names in {names}")
    for name in names:
        _check_class(name)
    return names, class_counts(n_per_class, len(names), long_tail, imbalance)


def each_image(*, n_per_class: int = SynthConfig.n_per_class, size: int = SynthConfig.size,
               classes: Sequence[str] | None = None, long_tail: bool = SynthConfig.long_tail, imbalance: float = 10.0,
               seed: int = SynthConfig.seed) -> Iterator[tuple[str, int, np.ndarray]]:
    """The images one at a time, class by class: (class name, index of the image in its class, uint8 image of
    varying shape). ``workflows.datasets.write_synthetic`` writes them as a folder of class folders."""
    names, counts = _plan(n_per_class, classes, long_tail, imbalance)
    for name, count in zip(names, counts):
        for i in range(count):
            yield name, i, render(name, _image_rng(seed, name, i), size)


def generate_arrays(*, n_per_class: int = SynthConfig.n_per_class, size: int = SynthConfig.size,
                    classes: Sequence[str] | None = None, long_tail: bool = SynthConfig.long_tail,
                    imbalance: float = 10.0, seed: int = SynthConfig.seed) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Generate in memory: (images of varying shape, int64 labels, class names): ``each_image``'s images, in order."""
    names, _ = _plan(n_per_class, classes, long_tail, imbalance)
    label = {name: k for k, name in enumerate(names)}
    images: list[np.ndarray] = []
    labels: list[int] = []
    for name, _, image in each_image(n_per_class=n_per_class, size=size, classes=classes, long_tail=long_tail,
                                     imbalance=imbalance, seed=seed):
        images.append(image)
        labels.append(label[name])
    return images, np.asarray(labels, dtype=np.int64), names

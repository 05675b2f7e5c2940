"""Tests for the synthetic plankton generator (diffprobe.data.synthetic) and its folders
(diffprobe.workflows.datasets.write_synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffprobe.data.synthetic import (
    DEFAULT_CLASSES,
    class_counts,
    generate_arrays,
    render,
)
from diffprobe.workflows.datasets import write_synthetic


def _border(img: np.ndarray) -> np.ndarray:
    return np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])


def _organism(img: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels clearly darker than the crop's background."""
    return img < np.median(_border(img)) - 40


def _of_class(name: str, n: int, seed: int = 0) -> list[np.ndarray]:
    images, _, _ = generate_arrays(n_per_class=n, classes=[name], seed=seed)
    return images


def test_default_classes_are_hierarchical_pairs():
    assert len(DEFAULT_CLASSES) >= 8
    families = {}
    for name in DEFAULT_CLASSES:
        family, variant = name.split("_", 1)
        families.setdefault(family, []).append(variant)
    assert all(len(v) == 2 for v in families.values())
    for name in ("elongated_thin", "elongated_thick", "spiny_short", "spiny_long",
                 "chain_three", "chain_five", "appendage_two", "appendage_four"):
        assert name in DEFAULT_CLASSES


def test_same_seed_same_images_different_seed_different():
    a, la, na = generate_arrays(n_per_class=3, seed=7)
    b, lb, nb = generate_arrays(n_per_class=3, seed=7)
    c, _, _ = generate_arrays(n_per_class=3, seed=8)
    assert na == nb == list(DEFAULT_CLASSES)
    np.testing.assert_array_equal(la, lb)
    assert all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))
    assert sum(x.shape == z.shape and np.array_equal(x, z) for x, z in zip(a, c)) == 0


def test_images_of_a_class_do_not_depend_on_other_classes():
    full, labels, names = generate_arrays(n_per_class=4, seed=1)
    alone, _, _ = generate_arrays(n_per_class=4, classes=["chain_five"], seed=1)
    subset = [im for im, lab in zip(full, labels) if names[lab] == "chain_five"]
    assert all(np.array_equal(x, y) for x, y in zip(subset, alone))


def test_render_dtype_shape_and_size_range():
    rng = np.random.default_rng(0)
    for name in DEFAULT_CLASSES:
        for _ in range(5):
            img = render(name, rng, size=64)
            assert img.dtype == np.uint8 and img.ndim == 2
            assert all(0.6 * 64 - 1 <= s <= 1.3 * 64 + 1 for s in img.shape)
    big = render("spiny_long", np.random.default_rng(0), size=128)
    assert max(big.shape) > 1.3 * 64  # size scales the crop


def test_dark_organism_on_light_background():
    images, labels, names = generate_arrays(n_per_class=5, seed=2)
    for img, lab in zip(images, labels):
        assert np.median(_border(img)) > 200, names[lab]
        assert img.min() < 130, names[lab]
        assert 0.02 < _organism(img).mean() < 0.8, names[lab]


def test_unknown_class_raises_naming_valid_ones():
    with pytest.raises(ValueError, match="elongated_thin"):
        render("jellyfish_big", np.random.default_rng(0))
    with pytest.raises(ValueError, match="spiny_long"):
        generate_arrays(n_per_class=1, classes=["nope"])


def test_class_counts_equal_and_long_tail():
    assert class_counts(60, 8) == [60] * 8
    counts = class_counts(100, 8, long_tail=True, imbalance=10.0)
    assert len(counts) == 8 and counts[0] == 100
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert counts[0] / counts[-1] == pytest.approx(10.0, rel=0.1)
    # The tail never drops below 3 images.
    assert class_counts(20, 5, long_tail=True, imbalance=100.0)[-1] == 3
    _, labels, _ = generate_arrays(n_per_class=12, classes=DEFAULT_CLASSES[:3], long_tail=True, imbalance=4.0)
    assert np.bincount(labels).tolist() == class_counts(12, 3, long_tail=True, imbalance=4.0) == [12, 6, 3]


def test_siblings_differ_measurably():
    def mean_area(name):
        return np.mean([_organism(im).sum() for im in _of_class(name, 20)])

    def mean_extent(name):
        # Longest side of the organism's bounding box: chains lie at any angle.
        out = []
        for im in _of_class(name, 20):
            ys, xs = np.nonzero(_organism(im))
            out.append(max(np.ptp(ys), np.ptp(xs)))
        return np.mean(out)

    assert mean_area("elongated_thick") > 1.3 * mean_area("elongated_thin")
    assert mean_extent("chain_five") > 1.3 * mean_extent("chain_three")
    assert mean_extent("spiny_long") > 1.3 * mean_extent("spiny_short")
    assert mean_area("appendage_four") > mean_area("appendage_two")


def test_write_synthetic_writes_readable_tree(tmp_path):
    classes = ["spiny_short", "chain_three"]
    out = write_synthetic(tmp_path / "synth", n_per_class=3, classes=classes, seed=5)
    assert out == tmp_path / "synth"
    assert sorted(p.name for p in out.iterdir()) == sorted(classes)
    arrays, _, _ = generate_arrays(n_per_class=3, classes=classes, seed=5)
    files = [out / c / f"{c}_{i:05d}.png" for c in classes for i in range(3)]
    assert sorted(out.rglob("*.png")) == sorted(files)
    for path, arr in zip(files, arrays):
        with Image.open(path) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), arr)  # same images as generate_arrays
    # Deterministic down to the bytes.
    again = write_synthetic(tmp_path / "again", n_per_class=3, classes=classes, seed=5)
    assert all((again / f.relative_to(out)).read_bytes() == f.read_bytes() for f in files)


def _features(images: list[np.ndarray], side: int = 16) -> np.ndarray:
    """Pad to square with the background level, downsample, invert: a plain pixel vector."""
    rows = []
    for img in images:
        h, w = img.shape
        s = max(h, w)
        sq = np.full((s, s), np.median(_border(img)), dtype=np.float32)
        sq[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = img
        small = Image.fromarray(sq).resize((side, side), Image.Resampling.BOX)
        rows.append(1.0 - np.asarray(small, dtype=np.float32).ravel() / 255.0)
    return np.stack(rows)


def test_classes_are_learnable_from_small_pixels():
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    train, y_train, _ = generate_arrays(n_per_class=40, seed=0)
    test, y_test, _ = generate_arrays(n_per_class=30, seed=1)  # held out: another seed
    # One BLAS thread: on a small shared machine, threads contending make this fit ~50x slower.
    with threadpool_limits(1):
        clf = LogisticRegression(C=1.0, max_iter=300).fit(_features(train), y_train)
    acc = (clf.predict(_features(test)) == y_test).mean()
    # Chance is 1/8. Raw rotated pixels are a weak representation, so ~0.5 is expected:
    # learnable, yet siblings are not trivially separable.
    assert acc > 0.4, acc

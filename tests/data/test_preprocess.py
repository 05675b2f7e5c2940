from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from diffprobe.data import Preprocess, preprocess, read_image
from diffprobe.data.preprocess import (
    CROP_MARGIN,
    border_level,
    illumination_plane,
    instrument_marks,
    object_box,
)
from diffprobe.evaluate.shifts import apply_shift


def test_shape_dtype_and_background_padding_keep_aspect():
    img = np.full((20, 60), 0.9, np.float32)  # light background, wide crop
    img[8:12, 5:55] = 0.1  # dark horizontal rod
    out = preprocess(img, Preprocess(size=32, invert=False, flatfield=False))
    assert out.shape == (32, 32) and out.dtype == np.uint8
    # Padding uses the crop's own background level, so the corners look like background.
    assert abs(int(out[0, 0]) - round(0.9 * 255)) <= 1 and abs(int(out[-1, -1]) - round(0.9 * 255)) <= 1
    dark = out < 128
    rows, cols = np.flatnonzero(dark.any(1)), np.flatnonzero(dark.any(0))
    # The rod stays wide and thin: aspect kept, not squashed to the square.
    assert (cols.max() - cols.min()) > 4 * (rows.max() - rows.min() + 1)


def test_invert_puts_background_at_zero():
    img = np.full((30, 30), 1.0, np.float32)
    img[10:20, 10:20] = 0.0
    out = preprocess(img, Preprocess(size=16, invert=True))
    assert out[0, 0] == 0 and out[8, 8] == 255


@pytest.mark.parametrize("size", [8, 32, 48, 64])
def test_configurable_sizes(size):
    assert preprocess(np.random.default_rng(0).random((37, 51)).astype(np.float32), Preprocess(size=size)).shape == (
        size, size)


def test_border_level_is_the_median_of_the_edge():
    img = np.zeros((10, 10), np.float32)
    img[0, :] = img[-1, :] = img[:, 0] = img[:, -1] = 0.8
    img[0, 0] = 0.0
    assert border_level(img) == pytest.approx(0.8)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="image size"):
        Preprocess(size=4)
    with pytest.raises(ValueError, match="unknown preprocessing"):
        Preprocess.from_dict({"size": 32, "colour": True})


def test_16bit_and_rgb_read_as_the_same_grey_levels(tmp_path):
    grey8 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 4).astype(np.uint8)
    Image.fromarray(grey8).save(tmp_path / "g8.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    Image.fromarray(np.stack([grey8] * 3, -1)).save(tmp_path / "rgb.png")
    a8, a16, argb = (read_image(tmp_path / f) for f in ("g8.png", "g16.png", "rgb.png"))
    assert a8.dtype == np.float32 and a8.max() <= 1.0
    np.testing.assert_allclose(a16, a8, atol=1e-6)
    np.testing.assert_allclose(argb, a8, atol=1 / 255)


def _organism():
    img = np.full((40, 56), 0.95, np.float32)  # light background, dark organism
    yy, xx = np.mgrid[0:40, 0:56]
    img[((yy - 20) / 9) ** 2 + ((xx - 28) / 15) ** 2 < 1] = 0.35
    img[18:22, 10:46] = 0.15
    return img


@pytest.mark.parametrize("gain,gradient", [(0.9, 0.0), (0.6, 0.0), (0.8, 0.15), (0.5, 0.25)])
def test_flatfield_undoes_lamp_gain_and_gradient(gain, gradient):
    img = _organism()
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    field = gain + gradient * ((xx / (w - 1) - 0.5) + 0.5 * (yy / (h - 1) - 0.5))
    ref = preprocess(img, Preprocess(size=32)).astype(int)
    dim = preprocess(img * field, Preprocess(size=32)).astype(int)
    assert np.abs(dim - ref).max() <= 3  # grey levels out of 255: the same input to the model
    raw = np.abs(preprocess(img * field, Preprocess(size=32, flatfield=False)).astype(int)
                 - preprocess(img, Preprocess(size=32, flatfield=False)).astype(int))
    assert raw.mean() > 10  # without flat-fielding the same change moves every pixel


def test_flatfield_survives_the_shift_suites_illumination():
    img = _organism()
    ref = preprocess(img, Preprocess(size=32)).astype(int)
    for severity in (1, 3, 5):
        shifted = apply_shift(img, "illumination", severity, seed=0, key="x")
        assert np.abs(preprocess(shifted, Preprocess(size=32)).astype(int) - ref).mean() < 2


def test_plane_is_exact_for_a_linear_field_and_ignores_an_organism_on_the_edge():
    yy, xx = np.mgrid[0:30, 0:40].astype(np.float32)
    field = 0.7 + 0.004 * xx - 0.003 * yy
    np.testing.assert_allclose(illumination_plane(field), field, atol=1e-5)
    touching = field.copy()
    touching[:, :6] *= 0.2  # an organism over a stretch of the top, bottom and left edges
    assert np.abs(illumination_plane(touching) - field).max() < 0.05


def test_flatfield_keeps_a_clean_white_background_crop_as_it_was():
    img = _organism() / 0.95  # background exactly 1, like most NDSB crops
    np.testing.assert_array_equal(preprocess(img, Preprocess(size=32)), preprocess(img, Preprocess(size=32, flatfield=False)))


def test_dark_field_subtracts_the_background():
    img = np.full((30, 30), 0.2, np.float32)
    img[10:20, 10:20] = 0.9
    out = preprocess(img, Preprocess(size=16, invert=False))
    assert out[0, 0] == 0 and out[8, 8] == round(0.7 * 255)


def test_settings_saved_before_flatfield_read_as_without_it():
    assert Preprocess.from_dict({"size": 32, "invert": True}).flatfield is False
    assert Preprocess().flatfield is True
    with pytest.raises(ValueError, match="flatfield must be true or false"):
        Preprocess(flatfield="yes")


def _loosely_framed(dark_field: bool) -> np.ndarray:
    """A 12 x 8 organism (with a 2-pixel appendage gap) at the left of a 100 x 100 frame, and one speck."""
    bg, obj = (0.05, 0.8) if dark_field else (0.95, 0.2)
    img = np.full((100, 100), bg, np.float32)
    img[40:52, 10:16] = obj
    img[40:52, 18:20] = obj  # a limb split from the body by a faint joint: still the organism
    img[90, 90] = obj  # a speck of marine snow: not the organism
    return img


@pytest.mark.parametrize("dark_field", [False, True])
def test_crop_cuts_the_frame_down_to_the_organism_with_a_margin(dark_field):
    img = _loosely_framed(dark_field)
    rows, cols = object_box(img, invert=not dark_field)
    margin = round(CROP_MARGIN * 12)
    assert (rows.start, rows.stop) == (40 - margin, 52 + margin)
    assert (cols.start, cols.stop) == (10 - margin, 20 + margin)
    pre = Preprocess(size=32, polarity="auto", crop=True)
    out = preprocess(img, pre)
    # Cropped, the organism fills the model's input instead of a corner of it.
    assert (out > 128).mean() > 5 * (preprocess(img, replace(pre, crop=False)) > 128).mean()


def test_crop_keeps_an_empty_frame_and_is_saved_only_when_on():
    blank = np.full((20, 30), 0.9, np.float32)
    assert object_box(blank, invert=True) == (slice(0, 20), slice(0, 30))
    assert "crop" not in Preprocess().to_dict()
    assert Preprocess.from_dict(Preprocess(crop=True).to_dict()).crop is True
    with pytest.raises(ValueError, match="crop must be true or false"):
        Preprocess(crop=1)


@pytest.mark.parametrize("dark_field", [False, True])
def test_crop_paints_over_a_scale_bar_and_its_label(dark_field):
    """Printed marks are not the organism: with them the crop gives exactly the input it gives without them."""
    bg = 0.05 if dark_field else 0.95
    img = np.full((100, 100), bg, np.float32)
    yy, xx = np.mgrid[0:100, 0:100]
    body = ((yy - 45) / 10) ** 2 + ((xx - 35) / 16) ** 2 < 1
    shade = 0.3 + 0.4 * (xx - 19) / 32  # an organism's contrast varies over it
    img[body] = (bg + shade if dark_field else bg - shade)[body]
    marked = apply_shift(img, "overlay", 3)
    assert not instrument_marks(img, invert=not dark_field).any()
    assert instrument_marks(marked, invert=not dark_field).any()
    pre = Preprocess(size=32, polarity="auto", crop=True)
    np.testing.assert_array_equal(preprocess(marked, pre), preprocess(img, pre))
    # Without the crop (the preprocessing of models saved before it), the marks stay in the frame.
    assert not np.array_equal(preprocess(marked, replace(pre, crop=False)), preprocess(img, replace(pre, crop=False)))

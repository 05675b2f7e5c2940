"""Field data is never clean: every bad file is skipped with its reason, every bad folder gets a clear error."""

import os

import numpy as np
import pytest
from PIL import Image

from diffprobe.data import ImageReadError, Preprocess, load_images, read_image, scan_folder
from diffprobe.data import io as dio
from diffprobe.utils import DiffprobeError


def _png(path, arr=None, mode=None):
    arr = np.full((20, 20), 200, np.uint8) if arr is None else arr
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr)
    (im.convert(mode) if mode else im).save(path)
    return path


@pytest.fixture
def messy(tmp_path):
    root = tmp_path / "messy data"
    good = [_png(root / "copepod" / f"ok_{i}.png") for i in range(3)]
    _png(root / "diatom ü" / "ok é.png")
    (root / "copepod" / "zero.jpg").write_bytes(b"")
    (root / "copepod" / "text.png").write_text("this is not an image")
    buf = (root / "copepod" / "ok_0.png").read_bytes()
    (root / "copepod" / "truncated.png").write_bytes(buf[: len(buf) // 2])
    jpg = root / "copepod" / "truncated.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(jpg, quality=95)
    jpg.write_bytes(jpg.read_bytes()[:300])
    _png(root / "copepod" / "tiny.png", np.zeros((1, 1), np.uint8))
    (root / "copepod" / "notes.txt").write_text("field notes")
    (root / "empty_class").mkdir()
    return root, good


def test_read_image_reasons(messy):
    root, _ = messy
    reasons = {}
    for name in ("zero.jpg", "text.png", "truncated.png", "truncated.jpg", "tiny.png"):
        with pytest.raises(ImageReadError) as e:
            read_image(root / "copepod" / name)
        assert e.value.path.endswith(name)
        reasons[name] = e.value.reason
    assert "empty file" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["truncated.png"] or "corrupt" in reasons["truncated.png"]
    assert "corrupt" in reasons["truncated.jpg"] or "truncated" in reasons["truncated.jpg"]
    assert "degenerate" in reasons["tiny.png"]


def test_bad_files_are_skipped_and_reported_never_fatal(messy, tmp_path):
    root, good = messy
    m = scan_folder(root)
    assert ("copepod/notes.txt", "not an image file extension") in m.ignored
    assert any("empty class folder" in r for _, r in m.ignored)
    assert "empty_class" not in m.classes
    arr = load_images(m, Preprocess(size=16), progress=False)
    skipped = dict(arr.skipped)
    assert set(skipped) == {"copepod/zero.jpg", "copepod/text.png", "copepod/truncated.png",
                            "copepod/truncated.jpg", "copepod/tiny.png"}
    assert len(arr) == 4  # three good copepods and the unicode-named diatom
    report = arr.write_skipped(tmp_path / "skipped.csv")
    assert report.read_text().count("\n") == 1 + 5


def test_unicode_and_spaces_in_paths(messy):
    root, _ = messy
    m = scan_folder(root)
    i = m.labels.index("diatom ü")
    assert m.full_path(i).name == "ok é.png"
    assert read_image(m.full_path(i)).shape == (20, 20)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "1", "I"])
def test_other_modes_read_as_grey(tmp_path, mode):
    arr = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    p = _png(tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png' if mode != 'I' else 'tif'}", arr, mode)
    out = read_image(p)
    assert out.shape == (16, 16) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_16bit_tiff(tmp_path):
    arr = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 256)
    p = tmp_path / "deep.tif"
    Image.fromarray(arr).save(p)
    out = read_image(p)
    assert out.max() == pytest.approx(arr.max() / 65535.0, rel=1e-6)


def test_huge_images_never_decode_at_full_size(tmp_path, monkeypatch):
    # Shrink the limit instead of writing a 20000 x 20000 file: the same code path.
    monkeypatch.setattr(dio, "MAX_PIXELS", 10_000)
    monkeypatch.setattr(dio, "DRAFT_SIDE", 64)
    big = np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8)
    _png(tmp_path / "big.png", big)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "big.png")
    Image.fromarray(big).save(tmp_path / "big.jpg")
    out = read_image(tmp_path / "big.jpg")  # JPEG: decoded at reduced scale instead
    assert max(out.shape) <= 200


def test_symlink_loop_is_reported_not_followed(tmp_path):
    root = tmp_path / "d"
    _png(root / "a" / "x.png")
    os.symlink(root / "a", root / "a" / "loop")
    m = scan_folder(root)
    assert m.paths == ["a/x.png"]
    assert any("symlink loop" in r for _, r in m.ignored)


def test_folder_without_classes_says_what_to_do(tmp_path):
    _png(tmp_path / "flat" / "x.png")
    with pytest.raises(DiffprobeError, match="no class folders.*unlabelled"):
        scan_folder(tmp_path / "flat")
    with pytest.raises(DiffprobeError, match="not a directory"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "void").mkdir()
    with pytest.raises(DiffprobeError, match="no class folders"):
        scan_folder(tmp_path / "void")


def test_all_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.png").write_bytes(b"junk")
    m = scan_folder(tmp_path)
    with pytest.raises(DiffprobeError, match="none of the 1 images could be read"):
        load_images(m, Preprocess(16), progress=False)


def test_class_with_one_image_is_left_out_of_the_split(tmp_path, caplog):
    from diffprobe.data import split_manifest

    for i in range(6):
        _png(tmp_path / "many" / f"{i}.png")
    _png(tmp_path / "single" / "0.png")
    s = split_manifest(scan_folder(tmp_path), seed=0)
    assert s.classes == ["many"] and "single (1)" in caplog.text


def test_unreadable_file_permission(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file; permission errors cannot be produced")
    p = _png(tmp_path / "locked.png")
    p.chmod(0)
    with pytest.raises(ImageReadError, match="permission"):
        read_image(p)


def test_image_cache_is_reused_and_rebuilt_when_damaged(tmp_path, synth_dir):
    m = scan_folder(synth_dir)
    a = load_images(m, Preprocess(16), cache_dir=tmp_path, progress=False)
    (cache,) = tmp_path.glob("images-*.npz")
    b = load_images(m, Preprocess(16), cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(a.images, b.images)
    cache.write_bytes(b"damaged")
    c = load_images(m, Preprocess(16), cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(a.images, c.images)

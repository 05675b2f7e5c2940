"""Per-image checksums: ``diffprobe data checksums`` writes a list, ``diffprobe data verify`` checks a copy
against it (missing / changed / extra images), and the packaged list of the project's NDSB copy."""

from __future__ import annotations

import csv
import gzip
import hashlib
from pathlib import Path

import pytest

from diffprobe.cli import main
from diffprobe.data.integrity import read_checksums, verify_images, write_checksums
from diffprobe.data.registry import checksum_list
from diffprobe.utils import DiffprobeError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path) -> Path:
    """Six tiny 'images' in three class folders (the bytes are all the checksums see)."""
    folder = tmp_path / "images"
    for k, name in enumerate(("a/1.jpg", "a/2.jpg", "b/3.png", "b/4.png", "c/5.jpg", "c/deep/6.jpg")):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"image {k}".encode())
    (folder / "a" / "notes.txt").write_text("not an image")
    (folder / ".hidden.jpg").write_bytes(b"left out")
    return folder


def test_checksums_are_sha256sum_lines_and_the_same_bytes_every_time(copy, tmp_path, capsys):
    out = tmp_path / "mine.sha256.gz"
    assert main(["data", "checksums", str(copy), "--out", str(out), "--no-progress"]) == 0
    assert f"6 image checksums -> {out}" in capsys.readouterr().out
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert lines[0] == f"{hashlib.sha256(b'image 0').hexdigest()}  a/1.jpg"
    assert [line.split("  ")[1] for line in lines] == ["a/1.jpg", "a/2.jpg", "b/3.png", "b/4.png", "c/5.jpg",
                                                       "c/deep/6.jpg"]
    first = out.read_bytes()
    write_checksums(copy, out, progress=False)
    assert out.read_bytes() == first  # no timestamp in the gzip header: a rewrite changes nothing
    assert read_checksums(out)["c/deep/6.jpg"] == lines[-1].split("  ")[0]


def test_verify_reports_missing_changed_and_extra_images(copy, tmp_path, capsys):
    listed = tmp_path / "list.sha256.gz"
    write_checksums(copy, listed, progress=False)
    assert verify_images(copy, listed, progress=False).ok
    (copy / "a" / "2.jpg").unlink()
    (copy / "b" / "3.png").write_bytes(b"re-encoded")
    (copy / "c" / "7.jpg").write_bytes(b"one more")
    report_csv = tmp_path / "mismatches.csv"
    assert main(["data", "verify", str(copy), "--checksums", str(listed), "--report", str(report_csv),
                 "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "4 of the 6 images of list.sha256.gz present and identical; 1 missing, 1 changed, 1 extra" in captured.out
    for shown in ("missing: a/2.jpg", "changed: b/3.png", "extra: c/7.jpg"):
        assert shown in captured.out
    assert "copy the 1 missing images" in captured.err and "replace the 1 changed images" in captured.err
    rows = list(csv.DictReader(report_csv.open()))
    assert [(r["path"], r["status"]) for r in rows] == [("a/2.jpg", "missing"), ("b/3.png", "changed"),
                                                        ("c/7.jpg", "extra")]
    assert rows[1]["expected_sha256"] != rows[1]["found_sha256"] and len(rows[1]["found_sha256"]) == 64


def test_extra_images_alone_pass_and_many_names_are_cut_short(copy, tmp_path, capsys):
    listed = tmp_path / "list.sha256.gz"
    write_checksums(copy, listed, progress=False)
    for k in range(8):
        (copy / "d" / f"{k}.jpg").parent.mkdir(exist_ok=True)
        (copy / "d" / f"{k}.jpg").write_bytes(b"x")
    assert main(["data", "verify", str(copy), "--checksums", str(listed), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "8 extra" in out and "... and 3 more" in out and "OK: every listed image is present and identical" in out


def test_verify_names_the_folder_to_pass_and_a_missing_list(copy, tmp_path, capsys):
    listed = tmp_path / "list.sha256.gz"
    write_checksums(copy, listed, progress=False)
    assert main(["data", "verify", str(tmp_path), "--checksums", str(listed), "--no-progress"]) == 2
    assert f"the images are in a sub-folder: pass {copy}" in capsys.readouterr().err
    with pytest.raises(DiffprobeError, match="checksum list not found"):
        verify_images(copy, tmp_path / "nope.sha256.gz", progress=False)
    bad = tmp_path / "bad.sha256"
    bad.write_text("not a checksum line\n")
    with pytest.raises(DiffprobeError, match="bad.sha256, line 1: expected"):
        verify_images(copy, bad, progress=False)
    assert main(["data", "verify", str(copy), "--dataset", "cifar"]) == 2
    assert "unknown dataset 'cifar'" in capsys.readouterr().err


def test_a_plain_sha256sum_binary_listing_is_read_too(copy, tmp_path):
    listed = tmp_path / "SHA256SUMS"  # what 'sha256sum -b a/1.jpg ...' prints
    listed.write_text("".join(f"{hashlib.sha256((copy / n).read_bytes()).hexdigest()} *{n}\n"
                              for n in ("a/1.jpg", "c/deep/6.jpg")))
    report = verify_images(copy, listed, progress=False)
    assert report.ok and report.n_listed == 2 and len(report.extra) == 4


def test_the_packaged_ndsb_list_holds_exactly_the_shipped_models_split():
    listed = read_checksums(checksum_list("ndsb"))
    with open(ROOT / "models" / "ndsb" / "split.csv", newline="") as f:
        split = {row["path"] for row in csv.DictReader(f)}
    assert len(listed) == 24128 and set(listed) == split


@pytest.mark.ndsb
def test_the_projects_ndsb_copy_verifies(ndsb_dir, capsys):
    assert main(["data", "verify", str(ndsb_dir), "--no-progress"]) == 0
    assert "24128 of the 24128 images of ndsb.sha256.gz present and identical; 0 missing, 0 changed" in \
        capsys.readouterr().out

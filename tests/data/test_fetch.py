"""``diffprobe data``: download (pooch, resuming an interrupted download), verify and unpack a dataset, then
check its images, against a local HTTP server serving an archive the test builds (the real archive host is
not reachable from CI)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import re
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffprobe.cli import main
from diffprobe.data import DATASETS
from diffprobe.utils import DiffprobeError
from diffprobe.workflows.datasets import fetch_dataset

CLASSES = {"acantharia": 2, "copepod": 3, "diatom_chain": 2}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 10), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _images() -> dict[str, bytes]:
    """{<class>/<k>.png: bytes} of the stand-in archive's labelled images."""
    names = [f"{cls}/{k}.png" for k, cls in enumerate(c for c, n in CLASSES.items() for _ in range(n))]
    return {name: _png(k) for k, name in enumerate(names)}


def _zip(path, images: dict[str, bytes] | None = None):
    """PlanktonSet/README.txt, PlanktonSet/train/<class>/<k>.png and an unlabelled PlanktonSet/test/."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("PlanktonSet/README.txt", "a tiny stand-in")
        for name, data in (_images() if images is None else images).items():
            z.writestr(f"PlanktonSet/train/{name}", data)
        z.writestr("PlanktonSet/test/999.png", _png(999))
    return path


def _checksum_list(path) -> Path:
    """The per-image checksum list of the stand-in archive's labelled images (the project's copy, here)."""
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(_images().items()))
    path.write_bytes(gzip.compress(lines.encode()))
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    gets: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).gets.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """(base URL, served folder) of an HTTP server on 127.0.0.1 in a thread."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    _Handler.gets = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_data_ndsb_downloads_verifies_and_unpacks_class_folders(server, tmp_path, capsys):
    url, root = server
    sha = _sha256(_zip(root / "archive.zip"))
    out = tmp_path / "ndsb" / "images"
    checksums = _checksum_list(tmp_path / "copy.sha256.gz")
    assert main(["data", "ndsb", "--out", str(out), "--url", f"{url}/archive.zip", "--sha256", sha,
                 "--checksums", str(checksums), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {sha} (verified)" in printed and "7 images in 3 class folders" in printed
    assert "7 of the 7 images of copy.sha256.gz present and identical; 0 missing, 0 changed, 0 extra" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)  # train/'s classes; test/ and README left out
    for cls, n in CLASSES.items():
        assert len(list((out / cls).glob("*.png"))) == n
    assert not list(tmp_path.glob("ndsb/.*partial"))
    # A second copy comes from the verified archive in the cache: no second download.
    assert main(["data", "fetch", "ndsb", "--out", str(tmp_path / "again"), "--url", f"{url}/archive.zip",
                 "--sha256", sha, "--checksums", str(checksums), "--no-progress"]) == 0
    assert _Handler.gets == ["/archive.zip"]
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(CLASSES)


def test_a_wrong_checksum_is_refused_naming_the_file(server, tmp_path, capsys):
    url, root = server
    _zip(root / "archive.zip")
    out = tmp_path / "images"
    assert main(["data", "ndsb", "--out", str(out), "--url", f"{url}/archive.zip", "--sha256", "0" * 64,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "archive.zip" in err and "0" * 64 in err
    assert not out.exists()
    with pytest.raises(DiffprobeError, match="64 hexadecimal digits"):
        fetch_dataset("ndsb", out, url=f"{url}/archive.zip", sha256="abc", progress=False)


def test_images_unlike_the_projects_copy_are_reported_after_unpacking(server, tmp_path, capsys):
    url, root = server
    images = _images()
    del images["acantharia/0.png"]
    images["copepod/2.png"] = _png(1234)
    images["copepod/extra.png"] = _png(99)  # the full archive holds more than the project's copy: fine
    _zip(root / "other.zip", images)
    checksums = _checksum_list(tmp_path / "copy.sha256.gz")
    assert main(["data", "ndsb", "--out", str(tmp_path / "images"), "--url", f"{url}/other.zip",
                 "--checksums", str(checksums), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "5 of the 7 images of copy.sha256.gz present and identical; 1 missing, 1 changed, 1 extra" in captured.out
    assert "does not hold the project's copy of ndsb" in captured.err and "diffprobe data verify" in captured.err
    assert (tmp_path / "images" / "copepod" / "extra.png").is_file()  # unpacked all the same, for the user to see


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the files of ``root`` with HTTP Range support; the first GET of a run is cut off after
    ``cut_after`` bytes (the connection closes, as when a network drops)."""

    root: Path
    cut_after: int | None = None
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802
        data = (self.root / self.path.lstrip("/")).read_bytes()
        asked = self.headers.get("Range")
        type(self).ranges.append(asked)
        start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if asked else 200)
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if type(self).cut_after is not None:
            body, type(self).cut_after = body[: type(self).cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def range_server(tmp_path, monkeypatch):
    """(base URL, served folder) of a server with Range support on 127.0.0.1."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "served_ranges"
    root.mkdir()
    handler = type("Handler", (_RangeHandler,), {"root": root, "ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_an_interrupted_download_resumes_where_it_stopped(range_server, tmp_path, capsys):
    url, root, handler = range_server
    archive = _zip(root / "archive.zip")
    sha = _sha256(archive)
    handler.cut_after = 1000
    checksums = _checksum_list(tmp_path / "copy.sha256.gz")
    command = ["data", "ndsb", "--out", str(tmp_path / "images"), "--url", f"{url}/archive.zip", "--sha256", sha,
               "--checksums", str(checksums), "--no-progress"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "download failed" in err and "1,000 bytes are kept in" in err and "run the same command again" in err
    (part,) = (tmp_path.parent / "cache" / "downloads").glob("ndsb-*-archive.zip.part")
    assert part.read_bytes() == archive.read_bytes()[:1000]
    assert main(command) == 0  # asks for the rest only, and the whole archive's checksum verifies
    assert f"sha256 {sha} (verified)" in capsys.readouterr().out
    assert handler.ranges == [None, "bytes=1000-"]
    assert not part.exists()


def test_a_part_longer_than_the_file_starts_again(range_server, tmp_path):
    url, root, handler = range_server
    sha = _sha256(_zip(root / "archive.zip"))
    cache = tmp_path.parent / "cache" / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    fname = f"ndsb-{hashlib.sha256(f'{url}/archive.zip'.encode()).hexdigest()[:12]}-archive.zip"
    (cache / f"{fname}.part").write_bytes(b"x" * 100_000)  # e.g. the start of a larger, older archive
    r = fetch_dataset("ndsb", tmp_path / "images", url=f"{url}/archive.zip", sha256=sha, progress=False)
    assert r["verified"] and handler.ranges == ["bytes=100000-", None]  # 416, then the whole file


def test_a_server_without_ranges_sends_the_whole_file_again(server, tmp_path):
    url, root = server  # http.server's SimpleHTTPRequestHandler ignores Range: 200 and the whole file
    sha = _sha256(_zip(root / "archive.zip"))
    cache = tmp_path.parent / "cache" / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    fname = f"ndsb-{hashlib.sha256(f'{url}/archive.zip'.encode()).hexdigest()[:12]}-archive.zip"
    (cache / f"{fname}.part").write_bytes(b"stale bytes of an earlier try")
    r = fetch_dataset("ndsb", tmp_path / "images", url=f"{url}/archive.zip", sha256=sha, progress=False)
    assert r["sha256"] == sha and r["verified"] and (r["n_classes"], r["n_images"]) == (3, 7)


def test_without_a_checksum_the_download_is_reported_unverified(server, tmp_path):
    url, root = server
    sha = _sha256(_zip(root / "plankton.zip"))
    r = fetch_dataset("ndsb", tmp_path / "images", url=f"{url}/plankton.zip", progress=False)
    assert r["sha256"] == sha and r["verified"] is False and (r["n_classes"], r["n_images"]) == (3, 7)


def test_tar_archives_unpack_and_members_outside_are_refused(server, tmp_path):
    url, root = server
    with tarfile.open(root / "flat.tar.gz", "w:gz") as t:  # class folders at the top, no wrapper
        for k, cls in enumerate(("a", "b", "b")):
            data = _png(k)
            info = tarfile.TarInfo(f"{cls}/{k}.png")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = fetch_dataset("ndsb", tmp_path / "ok", url=f"{url}/flat.tar.gz", progress=False)
    assert (r["n_classes"], r["n_images"]) == (2, 3)
    with tarfile.open(root / "evil.tar", "w") as t:
        data = _png(0)
        info = tarfile.TarInfo("../evil.png")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(DiffprobeError, match="evil.png"):
        fetch_dataset("ndsb", tmp_path / "bad", url=f"{url}/evil.tar", progress=False)
    assert not (tmp_path / "evil.png").exists()


def test_data_list_and_the_missing_address(tmp_path, capsys):
    assert main(["-v", "data", "list"]) == 0
    out = capsys.readouterr().out
    info = DATASETS["ndsb"]
    assert "ndsb: PlanktonSet 1.0" in out and info.landing_page in out and "0127422" in info.landing_page
    assert main(["data", "ndsb", "--out", str(tmp_path / "x")]) == 2  # no archive address recorded: --url
    err = capsys.readouterr().err
    assert "--url" in err and info.landing_page in err
    with pytest.raises(SystemExit):  # argparse: the required --out
        main(["data", "ndsb"])
    assert "--out" in capsys.readouterr().err
    assert main(["-v", "data", "cifar", "--out", str(tmp_path / "y")]) == 2  # 'data NAME' = 'data fetch NAME'
    assert "unknown dataset" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    with pytest.raises(DiffprobeError, match="not empty"):
        fetch_dataset("ndsb", tmp_path / "full", url="http://127.0.0.1:9/a.zip", progress=False)

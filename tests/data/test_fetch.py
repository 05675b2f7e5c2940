"""``diffprobe data``: download (pooch), verify and unpack a dataset, against a local HTTP server serving an
archive the test builds (the real archive host is not reachable from CI)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from diffprobe.cli import main
from diffprobe.data.registry import DATASETS, fetch_dataset
from diffprobe.utils import DiffprobeError

CLASSES = {"acantharia": 2, "copepod": 3, "diatom_chain": 2}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 10), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip(path):
    """PlanktonSet/README.txt, PlanktonSet/train/<class>/<k>.png and an unlabelled PlanktonSet/test/."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("PlanktonSet/README.txt", "a tiny stand-in")
        k = 0
        for cls, n in CLASSES.items():
            for _ in range(n):
                z.writestr(f"PlanktonSet/train/{cls}/{k}.png", _png(k))
                k += 1
        z.writestr("PlanktonSet/test/999.png", _png(999))
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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
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
    assert main(["data", "ndsb", "--out", str(out), "--url", f"{url}/archive.zip", "--sha256", sha,
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"sha256 {sha} (verified)" in printed and "7 images in 3 class folders" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)  # train/'s classes; test/ and README left out
    for cls, n in CLASSES.items():
        assert len(list((out / cls).glob("*.png"))) == n
    assert not list(tmp_path.glob("ndsb/.*partial"))
    # A second copy comes from the verified archive in the cache: no second download.
    assert main(["data", "ndsb", "--out", str(tmp_path / "again"), "--url", f"{url}/archive.zip", "--sha256", sha,
                 "--no-progress"]) == 0
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
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    info = DATASETS["ndsb"]
    assert "ndsb: PlanktonSet 1.0" in out and info.landing_page in out and "0127422" in info.landing_page
    assert main(["data", "ndsb", "--out", str(tmp_path / "x")]) == 2  # no archive address recorded: --url
    err = capsys.readouterr().err
    assert "--url" in err and info.landing_page in err
    assert main(["data", "ndsb"]) == 2 and "--out" in capsys.readouterr().err
    assert main(["data", "cifar", "--out", str(tmp_path / "y")]) == 2 and "unknown dataset" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    with pytest.raises(DiffprobeError, match="not empty"):
        fetch_dataset("ndsb", tmp_path / "full", url="http://127.0.0.1:9/a.zip", progress=False)

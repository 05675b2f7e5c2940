"""The datasets diffprobe can fetch: where each one is published, its archive's checksum and layout, the
per-image checksum list of the project's copy, and ``fetch_dataset``, which downloads (with pooch, resuming
an interrupted download), verifies and unpacks one into class folders, then checks its images.

This module is the one place that knows them (``diffprobe data list`` prints it).

PlanktonSet 1.0 (``ndsb``) is archived by NOAA NCEI as accession 0127422; its landing page,
https://www.ncei.noaa.gov/access/metadata/landing-page/bin/iso?id=gov.noaa.nodc:0127422, links the
data files. Neither the archive's exact download address nor its checksum is recorded here yet: the
project's machines cannot reach NCEI to confirm them, and an address or checksum typed in unchecked
would fail, or worse, pass, for the wrong reason. So ``url`` and ``sha256`` are ``None`` and
``fetch_dataset("ndsb", out, url=...)`` needs the archive's address (from the landing page) and, to
verify it, its SHA-256 (``sha256=``; without one the download is not verified, and the checksum it
had is printed so it can be recorded here or passed next time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..utils import DiffprobeError
from .dataset import default_cache_dir
from .download import ResumableDownloader
from .integrity import PACKAGED_CHECKSUMS, sha256_of, verify_images
from .io import is_image_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset ``diffprobe data NAME`` fetches.

    name:         the name on the command line.
    title:        what it is, with its citation.
    landing_page: where it is published (its archive is linked from there).
    url:          the archive's download address, or None where it is not recorded (``--url`` is then
                  required).
    sha256:       the archive's SHA-256, or None where it is not known: the download is then not verified
                  (the checksum it had is reported, to record here).
    layout:       what the archive holds once unpacked.
    labelled:     the archive's folder of class folders where it also holds others (e.g. ``train`` beside
                  an unlabelled ``test``); the shallowest folder of that name is used. None: the class
                  folders are found below any wrapper folders.
    n_classes, n_images: what a complete copy holds (reported beside what was unpacked).
    checksums:    the per-image checksum list of the project's copy in ``diffprobe/data/checksums`` (made by
                  ``diffprobe data checksums``), which ``diffprobe data verify`` and fetching check images
                  against; None where there is none.
    """

    name: str
    title: str
    landing_page: str
    url: str | None
    sha256: str | None
    layout: str
    labelled: str | None = None
    n_classes: int | None = None
    n_images: int | None = None
    checksums: str | None = None


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo(
        name="ndsb",
        title="PlanktonSet 1.0: the labelled images of the 2015 National Data Science Bowl (ISIIS-2, Straits of "
              "Florida, June 2014; Cowen, Sponaugle, Robinson, Luo (2015), NOAA NCEI accession 0127422)",
        landing_page="https://www.ncei.noaa.gov/access/metadata/landing-page/bin/iso?id=gov.noaa.nodc:0127422",
        url=None,  # not confirmed from here: see the module docstring
        sha256=None,  # not known to the project: see the module docstring
        layout="a .zip or .tar(.gz) archive of one folder per class (<class>/<image>), possibly inside wrapper "
               "folders; a train/ folder, where there is one, holds the labelled classes",
        labelled="train",
        n_classes=121,
        n_images=30336,
        checksums="ndsb.sha256.gz",  # the 24,128 images of the project's copy, all in models/ndsb/split.csv
    ),
)}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DiffprobeError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} ('diffprobe data list')")
    return DATASETS[name]


def checksum_list(name: str) -> Path:
    """The packaged per-image checksum list of dataset ``name``'s project copy."""
    info = dataset_info(name)
    if info.checksums is None:
        raise DiffprobeError(f"{name}: no checksum list ships with diffprobe; pass one with --checksums (made "
                             f"by 'diffprobe data checksums DIR --out FILE')")
    return PACKAGED_CHECKSUMS / info.checksums


def fetch_dataset(name: str, out: str | Path, *, url: str | None = None, sha256: str | None = None,
                  checksums: str | Path | None = None, progress: bool = True) -> dict:
    """Download dataset ``name``'s archive (pooch, with a progress bar), verify its SHA-256, unpack it,
    put its class folders in ``out`` (``out/<class>/<image>``; ``out`` must be new or empty) and check the
    images against the per-image checksum list of the project's copy.

    ``url`` / ``sha256`` replace the registry's (``DATASETS``); where the registry has no url, ``url`` is
    required. ``checksums`` replaces the packaged checksum list. The archive is kept in
    ``$DIFFPROBE_CACHE/downloads`` (``~/.cache/diffprobe``): a second run does not download it again, and
    an interrupted download resumes where it stopped (``<archive>.part``). Returns {"out", "archive",
    "sha256", "verified", "n_classes", "n_images", "images"}; "images" is the ``VerifyReport`` of the
    unpacked images (extra images, beyond the project's copy, are fine) or None without a checksum list.
    """
    import pooch  # noqa: PLC0415 - only this command needs it

    info = dataset_info(name)
    url = url or info.url
    if not url:
        raise DiffprobeError(f"{name}: the archive's download address is not recorded in diffprobe yet; find it "
                             f"on {info.landing_page} and pass it with --url (and its SHA-256 with --sha256 to "
                             f"verify the download)")
    known = (sha256 or info.sha256 or "").lower().removeprefix("sha256:") or None
    if known is not None and (len(known) != 64 or any(c not in "0123456789abcdef" for c in known)):
        raise DiffprobeError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DiffprobeError(f"{out}: already exists and is not empty; choose a new folder")

    # Keyed by the address, so archives of the same name from two places are never mixed up.
    fname = f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}-{Path(url.split('?')[0]).name or 'archive'}"
    cache = default_cache_dir() / "downloads"
    part = cache / f"{fname}.part"
    checksums = Path(checksums) if checksums else (checksum_list(name) if info.checksums else None)
    if checksums is not None and not checksums.is_file():
        raise DiffprobeError(f"{checksums}: checksum list not found (--checksums)")
    quiet = _DropPoochHint()
    pooch.get_logger().addFilter(quiet)
    try:
        archive = Path(pooch.retrieve(url, known_hash=f"sha256:{known}" if known else None, fname=fname,
                                      path=cache, downloader=ResumableDownloader(part, progressbar=progress)))
    except ValueError as e:
        if "hash" not in str(e):
            raise
        got = re.search(r"but got ([0-9a-fA-F]{64})", str(e))
        raise DiffprobeError(f"{fname} (downloaded from {url}): checksum mismatch, SHA-256 "
                             f"{got.group(1) if got else 'different'}, expected {known}; the download was deleted. "
                             f"Check --url and --sha256 (a changed archive needs a new checksum)") from None
    except Exception as e:  # noqa: BLE001 - network errors (requests, urllib3): one line, not a traceback
        kept = part.stat().st_size if part.exists() else 0
        resume = f"; {kept:,} bytes are kept in {part}: run the same command again to resume" if kept else ""
        raise DiffprobeError(f"{url}: download failed ({type(e).__name__}: {e}){resume}") from None
    finally:
        pooch.get_logger().removeFilter(quiet)
    digest = sha256_of(archive)
    if known is None:
        log.warning("%s: not verified (no known checksum); its SHA-256 is %s", archive.name, digest)

    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _unpack(archive, staging, progress=progress)
        root = _class_root(staging, info.labelled)
        classes = sorted(d for d in root.iterdir() if d.is_dir() and _has_images(d))
        if len(classes) < 2:
            raise DiffprobeError(f"{archive}: expected {info.layout}; found {len(classes)} folder(s) of images in "
                                 f"{root.relative_to(staging) if root != staging else 'the archive'}")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(root, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    n_images = sum(1 for p in out.rglob("*") if p.is_file() and is_image_name(p))
    n_classes = sum(1 for d in out.iterdir() if d.is_dir() and _has_images(d))
    if info.n_images and (n_classes, n_images) != (info.n_classes, info.n_images):
        log.warning("%s: %d images in %d classes; the complete %s has %d in %d", out, n_images, n_classes, name,
                    info.n_images, info.n_classes)
    images = verify_images(out, checksums, progress=progress) if checksums else None
    return {"out": out, "archive": archive, "sha256": digest, "verified": known is not None,
            "n_classes": n_classes, "n_images": n_images, "images": images}


class _DropPoochHint(logging.Filter):
    """pooch's advice to pass 'known_hash' to pooch.retrieve means --sha256 here (printed by the caller)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "known_hash" not in record.getMessage()


def _unpack(archive: Path, dest: Path, *, progress: bool) -> None:
    """Extract a .zip or tar archive into ``dest``, refusing members that would land outside it."""
    dest.mkdir(parents=True)
    top = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in tqdm(z.infolist(), desc="unpacking", unit="file", disable=not progress, mininterval=1.0):
                target = (dest / m.filename).resolve()
                if top not in target.parents and target != top:
                    raise DiffprobeError(f"{archive}: member {m.filename!r} points outside the archive; refused")
                z.extract(m, dest)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in tqdm(members, desc="unpacking", unit="file", disable=not progress, mininterval=1.0):
                try:
                    t.extract(m, dest, filter="data")  # no absolute paths, links out of dest, devices
                except tarfile.FilterError as e:
                    raise DiffprobeError(f"{archive}: member {m.name!r} refused ({e})") from None
    else:
        raise DiffprobeError(f"{archive}: neither a zip nor a tar archive (.zip, .tar, .tar.gz, .tar.bz2)")


def _visible(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]


def _has_images(folder: Path) -> bool:
    return any(p.is_file() and is_image_name(p) for p in folder.rglob("*"))


def _class_root(folder: Path, labelled: str | None = None) -> Path:
    """The folder of class folders: the shallowest folder named ``labelled`` if there is one, then below
    wrapper folders (one folder and no images, e.g. ``PlanktonSet/``)."""
    if labelled:
        named = sorted((p for p in folder.rglob(labelled) if p.is_dir() and "__MACOSX" not in p.parts),
                       key=lambda p: (len(p.parts), str(p)))
        if named:
            folder = named[0]
    while True:
        entries = _visible(folder)
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and not any(p.is_file() and is_image_name(p) for p in entries):
            folder = dirs[0]
            continue
        return folder

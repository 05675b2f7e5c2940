"""The dataset commands: ``data fetch`` (download, verify and unpack a dataset into class folders, then check its
images), ``summary`` (a dataset's counts, class-count plot and contact sheet) and ``synth`` (synthetic plankton
written as class folders).

The data layer knows the datasets and reads them: the registry (``data.registry``: where each dataset is
published, its checksums and layout), the resumable download (``data.download``), the per-image checksum lists
(``data.integrity``: write one, check a copy against one), the synthetic images (``data.synthetic``); these
functions fetch, unpack and write the folders and reports.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..config.data import SynthConfig
from ..data import synthetic
from ..data.dataset import default_cache_dir
from ..data.download import ResumableDownloader
from ..data.integrity import sha256_of, verify_images
from ..data.io import ImageReadError, is_image_name, read_image
from ..data.manifest import Manifest, open_dataset
from ..data.preprocess import Preprocess
from ..data.registry import checksum_list, dataset_info
from ..utils import DiffprobeError, stable_seed, write_json

log = logging.getLogger(__name__)


# ---- data fetch -----------------------------------------------------------------------------------------------
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


# ---- summary --------------------------------------------------------------------------------------------------
def summarize(data: str | Path | Manifest, out_dir: str | Path, *, labelled: bool = True, per_class: int = 6,
              max_classes: int = 40, seed: int = 0) -> dict:
    """The ``summary`` command: write ``summary.json``, ``class_counts.png`` and ``contact_sheet.png`` of the dataset
    ``data`` (a folder or manifest, opened with ``labelled``, or a ``Manifest``) to ``out_dir``; return the summary."""
    from ..report.plots import class_counts_plot, image_grid  # noqa: PLC0415 - matplotlib only when plotting

    m = data if isinstance(data, Manifest) else open_dataset(data, labelled=labelled)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = m.counts()
    values = np.array(list(counts.values())) if counts else np.array([0])
    summary = {
        "n_images": len(m), "n_classes": len(counts), "labelled": m.labelled,
        "counts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "largest": int(values.max()), "smallest": int(values.min()),
        "imbalance_ratio": float(values.max() / max(1, values.min())),
        "median_per_class": float(np.median(values)),
        "classes_with_at_least": {str(n): int((values >= n).sum()) for n in (10, 20, 50, 80, 100, 200)},
        "ignored_files": len(m.ignored),
    }
    if any(m.splits):
        summary["split_sizes"] = {s: int(sum(1 for x in m.splits if x == s)) for s in ("train", "val", "test")}
    write_json(out / "summary.json", summary)

    order = sorted(counts, key=lambda c: -counts[c])
    class_counts_plot(counts, out / "class_counts.png",
                      title=f"{len(m)} images, imbalance ratio {summary['imbalance_ratio']:.0f}:1")
    shown = order[:max_classes]
    pre = Preprocess(size=64, invert=False, flatfield=False)  # as imaged: no inversion, no field correction
    rng = np.random.default_rng(stable_seed("sheet", seed))
    rows = []
    for cls in shown:
        idx = [i for i, lab in enumerate(m.labels) if lab == cls]
        pick = rng.choice(idx, min(per_class, len(idx)), replace=False) if idx else []
        rows.append([_thumbnail(m.full_path(i), pre) for i in pick] + [None] * (per_class - len(pick)))
    image_grid(rows, out / "contact_sheet.png", row_labels=[f"{c}\n({counts[c]})" for c in shown], vmax=255,
               cell=0.9, label_width=2.2, dpi=90)
    return summary


def _thumbnail(path, pre: Preprocess) -> np.ndarray | str:
    try:
        return pre(read_image(path))
    except ImageReadError:
        return "unreadable"


# ---- synth ----------------------------------------------------------------------------------------------------
def write_synthetic(out_dir: str | Path, *, n_per_class: int = SynthConfig.n_per_class, size: int = SynthConfig.size,
                    classes: Sequence[str] | None = None, long_tail: bool = SynthConfig.long_tail,
                    imbalance: float = 10.0, seed: int = SynthConfig.seed, fmt: str = "png") -> Path:
    """Write the synthetic plankton images (``data.synthetic``) as an NDSB-like folder tree
    ``out_dir/<class>/<class>_<i:05d>.<fmt>``; return ``out_dir``.

    Deterministic: the same arguments give byte-identical files, the images ``synthetic.generate_arrays`` gives.
    """
    out = Path(out_dir)
    fmt = fmt.lower().lstrip(".")
    for name, i, image in synthetic.each_image(n_per_class=n_per_class, size=size, classes=classes,
                                               long_tail=long_tail, imbalance=imbalance, seed=seed):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{name}_{i:05d}.{fmt}")
    return out

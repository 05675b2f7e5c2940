"""Per-image checksums of a dataset copy: write a list, and check a copy against one.

A checksum list is a gzip-compressed text file in ``sha256sum``'s format, one line per image,
``<sha256>  <class>/<image>``, sorted by path (so ``zcat LIST | sha256sum -c`` run inside the image folder
checks it too). The lists of the project's copies ship with the package (``diffprobe/data/checksums``):
``ndsb.sha256.gz`` holds the 24,128 images of ``$DIFFPROBE_DATA/ndsb/images`` that the shipped model's
split (``models/ndsb/split.csv``) was made from, so a copy that matches it reproduces that split.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..base import DiffprobeError
from .io import IMAGE_EXTENSIONS, is_image_name

PACKAGED_CHECKSUMS = Path(__file__).parent / "checksums"
NAMES_SHOWN = 5  # names printed per kind of mismatch; a report CSV lists them all
CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def image_paths(folder: str | Path) -> list[str]:
    """The images below ``folder``, as sorted '/'-separated paths relative to it (hidden files left out)."""
    folder = Path(folder)
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and is_image_name(p)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def write_checksums(folder: str | Path, out: str | Path, *, progress: bool = True) -> int:
    """Write the checksum list of the images below ``folder`` to ``out`` (gzip; the same bytes for the same
    images, so it can be committed). Returns the number of images."""
    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise DiffprobeError(f"{folder}: not a folder; pass the folder of class folders (<class>/<image>)")
    paths = image_paths(folder)
    if not paths:
        raise DiffprobeError(f"{folder}: no images found (files ending {', '.join(IMAGE_EXTENSIONS)})")
    lines = [f"{sha256_of(folder / p)}  {p}\n"
             for p in tqdm(paths, desc="hashing", unit="image", disable=not progress, mininterval=1.0)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write("".join(lines).encode())
    return len(paths)


def read_checksums(path: str | Path) -> dict[str, str]:
    """{relative path: sha256} from a checksum list (gzip-compressed or plain text; ``sha256sum``'s text or
    binary lines, ``<sha256>  <name>`` or ``<sha256> *<name>``)."""
    path = Path(path)
    if not path.is_file():
        raise DiffprobeError(f"{path}: checksum list not found; make one with 'diffprobe data checksums DIR --out "
                             f"{path.name}'")
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    checksums = {}
    with (gzip.open if compressed else open)(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            match = CHECKSUM_LINE.fullmatch(line.rstrip("\n"))
            if not match:
                raise DiffprobeError(f"{path}, line {number}: expected '<sha256>  <class>/<image>' (sha256sum's "
                                     f"format), got {line.strip()[:80]!r}")
            checksums[match.group(2)] = match.group(1).lower()
    return checksums


@dataclass
class VerifyReport:
    """How a folder of images compares with a checksum list.

    missing: listed images not in the folder; changed: listed images whose SHA-256 differs (path, expected,
    found); extra: images in the folder that the list does not hold (harmless: e.g. the full NCEI archive
    holds more than the project's copy). ``ok`` when every listed image is present and identical.
    """

    folder: Path
    checksums: Path
    n_listed: int
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def summary(self) -> str:
        n_identical = self.n_listed - len(self.missing) - len(self.changed)
        lines = [f"{self.folder}: {n_identical} of the {self.n_listed} images of {self.checksums.name} present and "
                 f"identical; {len(self.missing)} missing, {len(self.changed)} changed, {len(self.extra)} extra "
                 f"(not in the list: ignored)"]
        for kind, names in (("missing", self.missing), ("changed", [c[0] for c in self.changed]),
                            ("extra", self.extra)):
            if names:
                more = f" ... and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
                lines.append(f"  {kind}: {', '.join(names[:NAMES_SHOWN])}{more}")
        return "\n".join(lines)

    def advice(self, fetch: str = "fetch a complete copy into a new folder") -> str:
        """What to do about the mismatches (empty when ``ok``); ``fetch`` says how to get a complete copy."""
        if self.ok:
            return ""
        if len(self.missing) == self.n_listed:
            inside = next((e.removesuffix(self.missing[0]) for e in self.extra if e.endswith(f"/{self.missing[0]}")),
                          None)
            if inside:
                return f"the images are in a sub-folder: pass {self.folder / inside.rstrip('/')}"
            return (f"none of the listed images is in {self.folder}: pass the folder of class folders "
                    f"(<class>/<image>, e.g. .../ndsb/images, not .../ndsb), or {fetch}")
        advice = []
        if self.missing:
            advice.append(f"copy the {len(self.missing)} missing images into their class folders, or {fetch}")
        if self.changed:
            advice.append(f"replace the {len(self.changed)} changed images with the originals from the archive "
                          f"(a re-encoded, resized or truncated image gives other features)")
        return "; ".join(advice)

    def write_csv(self, path: str | Path) -> Path:
        """Every mismatch: path, status (missing / changed / extra), expected_sha256, found_sha256."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "status", "expected_sha256", "found_sha256"])
            w.writerows([name, "missing", "", ""] for name in self.missing)
            w.writerows([name, "changed", expected, found] for name, expected, found in self.changed)
            w.writerows([name, "extra", "", ""] for name in self.extra)
        return path


def verify_images(folder: str | Path, checksums: str | Path, *, progress: bool = True) -> VerifyReport:
    """Compare the images below ``folder`` with the checksum list ``checksums`` (each listed image is hashed;
    images the list does not hold are only counted)."""
    folder, checksums = Path(folder), Path(checksums)
    if not folder.is_dir():
        raise DiffprobeError(f"{folder}: not a folder; pass the folder of class folders (<class>/<image>)")
    expected = read_checksums(checksums)
    present = set(image_paths(folder))
    report = VerifyReport(folder, checksums, len(expected), extra=sorted(present - expected.keys()))
    for name in tqdm(sorted(expected), desc="verifying", unit="image", disable=not progress, mininterval=1.0):
        if name not in present:
            report.missing.append(name)
        elif (found := sha256_of(folder / name)) != expected[name]:
            report.changed.append((name, expected[name], found))
    return report

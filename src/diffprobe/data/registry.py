"""The datasets diffprobe can fetch: where each one is published, its archive's checksum and layout, the
per-image checksum list of the project's copy. ``workflows.datasets.fetch_dataset`` downloads (with pooch, resuming
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

from dataclasses import dataclass
from pathlib import Path

from ..utils import DiffprobeError
from .integrity import PACKAGED_CHECKSUMS


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

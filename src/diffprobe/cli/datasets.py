"""``diffprobe data``: list the datasets diffprobe knows, fetch one (download, verify, unpack into class
folders), check a copy's images against the project's per-image checksums, or write such a list. What each
dataset is and the checksum lists live in the library (``diffprobe.data``: ``DATASETS``, ``verify_images``,
``write_checksums``), fetching one in ``workflows.datasets``; not here."""

from __future__ import annotations

from pathlib import Path

from ..config.data import VerifyConfig
from .args import option


def cmd_data_list(args) -> None:
    from ..data import DATASETS  # noqa: PLC0415 - loads the data layer only when run

    for d in DATASETS.values():
        size = f"{d.n_images:,} images in {d.n_classes} classes" if d.n_images else "size not recorded"
        print(f"{d.name}: {d.title}\n    {size}; published at {d.landing_page}\n"
              f"    archive: {d.url or 'address not recorded (pass --url)'}; "
              f"sha256: {d.sha256 or 'not recorded (pass --sha256 to verify)'}\n"
              f"    per-image checksums of the project's copy: {d.checksums or 'none'}")


def cmd_data_fetch(args) -> None:
    from ..base import DiffprobeError  # noqa: PLC0415
    from ..workflows.datasets import fetch_dataset  # noqa: PLC0415

    r = fetch_dataset(args.dataset, args.out, url=args.url, sha256=args.sha256, checksums=args.checksums,
                      progress=not args.no_progress)
    check = "verified" if r["verified"] else "NOT verified (no checksum given)"
    print(f"archive {r['archive']} sha256 {r['sha256']} ({check})")
    print(f"{r['n_images']} images in {r['n_classes']} class folders -> {r['out']}")
    images = r["images"]
    if images is None:
        return
    print(images.summary())
    if not images.ok:
        raise DiffprobeError(f"{r['out']} does not hold the project's copy of {args.dataset} (another version of "
                             f"the archive?): {images.advice()}; 'diffprobe data verify {r['out']} --report "
                             f"mismatches.csv' lists every mismatch")


def cmd_data_verify(args) -> None:
    from ..base import DiffprobeError  # noqa: PLC0415
    from ..data import checksum_list, verify_images  # noqa: PLC0415

    checksums = Path(args.checksums) if args.checksums else checksum_list(args.dataset)
    report = verify_images(args.folder, checksums, progress=not args.no_progress)
    print(report.summary())
    if args.report:
        print(f"every mismatch -> {report.write_csv(args.report)}")
    if not report.ok:
        fetch = f"fetch a complete copy into a new folder ('diffprobe data {args.dataset} --out NEW_DIR')"
        needs = "" if args.checksums else (f". The shipped model's split (models/{args.dataset}/split.csv) needs "
                                           f"every listed image present and identical")
        more = "" if args.report else "; --report FILE.csv lists every mismatch"
        raise DiffprobeError(f"{report.advice(fetch)}{needs}{more}")
    print("OK: every listed image is present and identical")


def cmd_data_checksums(args) -> None:
    from ..data import write_checksums  # noqa: PLC0415

    n = write_checksums(args.folder, args.out, progress=not args.no_progress)
    print(f"{n} image checksums -> {args.out}")


ACTIONS = ("list", "fetch", "verify", "checksums")


def route_fetch_shorthand(argv: list[str]) -> list[str]:
    """``diffprobe data NAME ...`` is short for ``diffprobe data fetch NAME ...``."""
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)  # after -v / --verbose
    if command is None or argv[command] != "data" or command + 1 >= len(argv):
        return argv
    action = argv[command + 1]
    if action in ACTIONS or action.startswith("-"):
        return argv
    return [*argv[: command + 1], "fetch", *argv[command + 1 :]]


def add_commands(sub) -> None:
    s = sub.add_parser("data", help="the datasets diffprobe knows: 'data list', 'data NAME --out DIR' to download, "
                                    "verify and unpack one into class folders, 'data verify DIR' to check a copy's "
                                    "images, 'data checksums DIR --out FILE' to list a folder's image checksums")
    actions = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the datasets, where they are published, their checksums").set_defaults(
        fn=cmd_data_list)

    f = actions.add_parser("fetch", help="download, verify and unpack a dataset into class folders, then check its "
                                         "images against the project's copy ('data NAME ...' is short for "
                                         "'data fetch NAME ...')")
    f.add_argument("dataset", help="the dataset's name (e.g. ndsb: PlanktonSet 1.0; 'data list' names them)")
    f.add_argument("--out", required=True, help="new or empty folder for the class folders (<class>/<image>), "
                                                "e.g. $DIFFPROBE_DATA/ndsb/images")
    f.add_argument("--url", help="the archive's address (required where the registry records none; the "
                                 "dataset's landing page, printed by 'data list', links it)")
    f.add_argument("--sha256", help="the archive's SHA-256; the download is refused if it differs (default: the "
                                    "registry's, where it records one)")
    f.add_argument("--checksums", help="per-image checksum list to check the unpacked images against (default: "
                                       "the project's copy's, shipped with diffprobe)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.set_defaults(fn=cmd_data_fetch)

    v = actions.add_parser("verify", help="check a copy's images against the project's per-image SHA-256 list: "
                                          "missing, changed and extra images; fails unless every image of the "
                                          "shipped model's split is present and identical")
    v.add_argument("folder", help="the folder of class folders, e.g. $DIFFPROBE_DATA/ndsb/images")
    option(v, "--dataset", VerifyConfig, help="whose packaged checksum list to check against (default: {default})")
    v.add_argument("--checksums", help="check against this checksum list instead (made by 'data checksums')")
    v.add_argument("--report", help="write every mismatch to this CSV (path, status, expected_sha256, found_sha256)")
    v.add_argument("--no-progress", action="store_true", help="no progress bar")
    v.set_defaults(fn=cmd_data_verify)

    c = actions.add_parser("checksums", help="write the SHA-256 list of a folder's images (sha256sum's format, "
                                             "gzip-compressed), for 'data verify --checksums'")
    c.add_argument("folder", help="the folder of class folders")
    c.add_argument("--out", required=True, help="the list to write, e.g. mine.sha256.gz")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(fn=cmd_data_checksums)

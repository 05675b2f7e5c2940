"""``diffprobe data``: list the datasets diffprobe knows, fetch one (download, verify, unpack into class
folders). What each dataset is lives in the library (``diffprobe.data.registry``), not here."""

from __future__ import annotations


def cmd_data(args):
    from ..base import DiffprobeError  # noqa: PLC0415
    from ..data.registry import DATASETS, fetch_dataset  # noqa: PLC0415 - loads the data layer only when run

    if args.dataset == "list":
        for d in DATASETS.values():
            size = f"{d.n_images:,} images in {d.n_classes} classes" if d.n_images else "size not recorded"
            print(f"{d.name}: {d.title}\n    {size}; published at {d.landing_page}\n"
                  f"    archive: {d.url or 'address not recorded (pass --url)'}; "
                  f"sha256: {d.sha256 or 'not recorded (pass --sha256 to verify)'}")
        return
    if not args.out:
        raise DiffprobeError(f"diffprobe data {args.dataset}: --out DIR is required (the folder for its class folders)")
    r = fetch_dataset(args.dataset, args.out, url=args.url, sha256=args.sha256, progress=not args.no_progress)
    check = "verified" if r["verified"] else "NOT verified (no checksum given)"
    print(f"archive {r['archive']} sha256 {r['sha256']} ({check})")
    print(f"{r['n_images']} images in {r['n_classes']} class folders -> {r['out']}")


def add_commands(sub) -> None:
    s = sub.add_parser("data", help="the datasets diffprobe knows: 'data list', or 'data NAME --out DIR' to "
                                    "download, verify and unpack one into class folders")
    s.add_argument("dataset", help="'list' (the datasets, where they are published, their checksums) or a "
                                   "dataset's name (e.g. ndsb: PlanktonSet 1.0)")
    s.add_argument("--out", help="new or empty folder for the class folders (<class>/<image>), e.g. "
                                 "$DIFFPROBE_DATA/ndsb/images")
    s.add_argument("--url", help="the archive's address (required where the registry records none; the dataset's "
                                 "landing page, printed by 'data list', links it)")
    s.add_argument("--sha256", help="the archive's SHA-256; the download is refused if it differs (default: the "
                                    "registry's, where it records one)")
    s.add_argument("--no-progress", action="store_true", help="no progress bars")
    s.set_defaults(fn=cmd_data)

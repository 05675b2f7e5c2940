"""The validation web app: ``app init`` (a project of images and a bundle's frozen features) and ``app --project``
(serve it), ``app export`` (its labels as EcoTaxa TSV and CSV without the browser; with ``--bundle`` also a
classifier bundle fitted on the validated labels), ``app taxonomy`` (the tree the sidebar groups the classes in)."""

from __future__ import annotations

from pathlib import Path

from ..app.config import BundleConfig, InitConfig, ServeConfig
from .args import add_precision_arg, option


def cmd_app(args):
    if args.app_command == "init":
        from ..app.project import init_project  # noqa: PLC0415 - heavy imports only when the command runs

        r = init_project(args.dir, args.images, args.model, chunk=args.chunk, batch_size=args.batch_size,
                         precision=args.precision, database=args.database, taxonomy=args.taxonomy)
        skipped = f"; {r['n_skipped']} unreadable files listed in {Path(args.dir) / 'skipped.csv'}" \
            if r["n_skipped"] else ""
        print(f"app project {args.dir}: {r['n_objects']} objects, {len(r['classes'])} classes, features "
              f"{r['feature_dim']}-D{skipped}")
        print(f"serve it with: diffprobe app --project {args.dir}")
    elif args.app_command == "taxonomy":
        from ..app.project import Project, set_taxonomy  # noqa: PLC0415

        Project.open(args.dir).close()  # an app project, before anything is written into it
        parents = set_taxonomy(args.dir, args.file)
        print(f"{args.dir}: taxonomy of {len(parents)} taxa from {args.file}; the sidebar shows it on the next load")
    elif args.app_command == "export":
        from ..app.export import ecotaxa_tsv, export_bundle, labels_csv  # noqa: PLC0415
        from ..app.project import Project  # noqa: PLC0415

        project = Project.open(args.dir)
        try:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            if args.bundle:  # first: it is what can be refused (too few validated images), before anything is written
                b = export_bundle(project, out / f"{project.name}_bundle", min_per_class=args.min_per_class)
            (out / f"{project.name}_ecotaxa.tsv").write_text(ecotaxa_tsv(project))
            (out / f"{project.name}_labels.csv").write_text(labels_csv(project))
        finally:
            project.close()
        print(f"wrote {out / f'{project.name}_ecotaxa.tsv'} and {out / f'{project.name}_labels.csv'}")
        if args.bundle:
            left = "; left out (under {}): {}".format(args.min_per_class, ", ".join(
                f"{c} ({n})" for c, n in b["left_out"].items())) if b["left_out"] else ""
            print(f"wrote the bundle {b['path']}: {len(b['per_class'])} classes from {b['n_images']} validated images, "
                  f"cross-validated accuracy {b['cross_validated']['accuracy']:.2%}{left}")
    else:
        if not args.project:
            raise SystemExit("diffprobe app: pass --project DIR to serve a project, or make one first with "
                             "'diffprobe app init DIR --images FOLDER --model BUNDLE'")
        from ..app.server import serve  # noqa: PLC0415

        serve(args.project, host=args.host, port=args.port, token=args.token, user=args.user)


def add_commands(sub) -> None:
    s = sub.add_parser("app", help="the validation web app: see, correct and grow labels with the frozen features "
                                   "('app init' makes a project, 'app --project DIR' serves it)")
    s.add_argument("--project", help="project folder made by 'diffprobe app init'")
    option(s, "--host", ServeConfig,
           help="interface to listen on (default {default}, this machine only; any other needs --token)")
    option(s, "--port", ServeConfig, type=int)
    s.add_argument("--token", help="secret every request must carry; required with a --host other than loopback")
    s.add_argument("--user", help="name recorded with each decision (default: your login name)")
    s.set_defaults(fn=cmd_app, app_command=None)
    app_sub = s.add_subparsers(dest="app_command", metavar="ACTION")

    i = app_sub.add_parser("init", help="make a project: each image's features computed once with the bundle, its "
                                        "prediction, and the decisions store (images are not copied)")
    i.add_argument("dir", help="new (or empty) project folder; an interrupted init resumes when run again")
    i.add_argument("--images", required=True, help="image folder (searched recursively), manifest CSV or EcoTaxa TSV")
    i.add_argument("--model", required=True, help="classifier bundle folder")
    i.add_argument("--database", help="SQLAlchemy URL of the store (e.g. postgresql://...); default: "
                                      "DIR/decisions.sqlite")
    i.add_argument("--taxonomy", help="CSV or TSV of 'name,parent' rows: the sidebar groups the classes in this tree "
                                      "(default: a tree from the class names' '_' prefixes)")
    option(i, "--chunk", InitConfig, type=int, help="images per resumable chunk (default {default})")
    option(i, "--batch-size", InitConfig, type=int)
    add_precision_arg(i, InitConfig)
    i.set_defaults(fn=cmd_app)

    t = app_sub.add_parser("taxonomy", help="give a project a taxonomy file: the sidebar groups its classes in that "
                                            "tree (validated first; errors name the line)")
    t.add_argument("dir", help="project folder")
    t.add_argument("file", help="CSV or TSV with the columns name and parent, one row per taxon")
    t.set_defaults(fn=cmd_app)

    e = app_sub.add_parser("export", help="write a project's current labels: EcoTaxa TSV and CSV (and, with "
                                          "--bundle, a classifier bundle fitted on the validated labels)")
    e.add_argument("dir", help="project folder")
    e.add_argument("--out", required=True, help="folder for DIRNAME_ecotaxa.tsv and DIRNAME_labels.csv "
                                                "(and DIRNAME_bundle/)")
    e.add_argument("--bundle", action="store_true",
                   help="also write OUT/DIRNAME_bundle/: the project's bundle with a new head fitted on the "
                        "validated images' cached features, as 'diffprobe adapt' fits one (classes added in the "
                        "app included)")
    option(e, "--min-per-class", BundleConfig, type=int,
           help="with --bundle: validated images a class needs to be in the bundle (default {default}; classes "
                "with fewer are left out and named)")
    e.set_defaults(fn=cmd_app)

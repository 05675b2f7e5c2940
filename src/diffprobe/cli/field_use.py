"""Field-use commands: ``evaluate`` (another labelled dataset), ``shift`` (robustness suite),
``predict`` (classify new images, abundances), ``adapt`` (a new instrument, few shots), ``calibrate``
(temperature, unknown threshold), ``ensemble`` (bundles that read each image their own way, averaged) and
``export`` (a bundle as a model folder to ship). All but ``adapt`` take a reading ensemble as a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.evaluate import CalibrateConfig, EvaluateConfig, PredictConfig, ShiftConfig
from ..config.features import VIEWS
from ..workflows.config import READOUTS, AdaptConfig
from .args import add_precision_arg, option


def _bundle(args):
    from ..probe import load_bundle  # noqa: PLC0415

    return load_bundle(args.model, precision=args.precision, views=getattr(args, "views", None))


def add_views_arg(s) -> None:
    s.add_argument("--views", type=int, choices=VIEWS,
                   help="test-time views per image (flips / quarter turns, features averaged) in place of the "
                        "bundle's own (bundle.json feature_spec.views): more views, slower, often a little better")


def cmd_evaluate(args):
    from ..workflows.evaluate import evaluate_bundle  # noqa: PLC0415 - heavy imports only when the command runs

    r = evaluate_bundle(_bundle(args), args.data, args.out, class_map=args.class_map, part=args.part, seed=args.seed,
                        size_scale=args.size_scale)
    c = r["calibration"]
    if r["size_scale"] != 1.0:
        print(f"object sizes rescaled x{r['size_scale']:.3f} to the model's pixel scale")
    print(f"{r['n_images']} images ({r['mode']}): accuracy {r['accuracy']:.2%}, macro F1 {r['macro_f1']:.3f} "
          f"(chance {r['chance_accuracy']:.2%}); ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f} after "
          f"temperature {c['temperature']:.2f}")
    if r["n_skipped"]:
        print(f"skipped {r['n_skipped']} images of {len(r['skipped_by_class'])} classes the model does not know"
              + (" or the map does not name" if r["mode"] == "class map" else ""))
    if "openset" in r:
        print(f"unknown detection AUROC (max probability): {r['openset']['auroc_msp']:.3f}")
    if "abundance" in r:
        e = r["abundance"]["prior_shift"]["mean_error"]
        print("abundance error under synthetic prior shift: " + ", ".join(f"{k.upper()} {v:.3f}" for k, v in e.items()))
    if r["shift_warning"]:
        print(f"warning: {r['shift_warning']}")
    print(f"wrote {args.out}/metrics.json, report.md, confusion.png")


def cmd_shift(args):
    from ..workflows.shifts import run_shift_suite  # noqa: PLC0415

    r = run_shift_suite(_bundle(args), args.data, args.out, shifts=args.shifts, severities=args.severities,
                        part=args.part, seed=args.seed, split_seed=args.split_seed)
    print(f"clean accuracy {r['clean']['accuracy']:.2%} on {r['n_images']} {r['part']} images")
    for s, rows in r["shifts"].items():
        print(f"{s:>13}: " + "  ".join(f"{row['accuracy']:.0%}" for row in rows))
    print(f"wrote {args.out}/shift.json, shift.md, robustness.png, shift_examples.png")


def cmd_predict(args):
    from ..workflows.predict import predict_files  # noqa: PLC0415

    r = predict_files(_bundle(args), args.images, args.out, batch_size=args.batch_size, format=args.format,
                      size_scale=args.size_scale, shard_size=args.shard_size)
    if r is None:  # another process of a launched run: the main one writes and reports
        return
    files = r["files"]
    if r["size_scale"] != 1.0:
        print(f"object sizes rescaled x{r['size_scale']:.3f} to the model's pixel scale")
    unknown = f", {r['n_unknown']} flagged unknown" if r["n_unknown"] is not None else ""
    print(f"{r['n_images']} images classified{unknown} -> {files['predictions']}; abundances -> {files['abundance']}")
    if r["n_skipped"]:
        print(f"{r['n_skipped']} files could not be read; listed in {files['skipped']}")
    if r["shift_warning"]:
        print(f"warning: {r['shift_warning']}")


def cmd_adapt(args):
    from ..probe import ClassifierBundle  # noqa: PLC0415
    from ..workflows.adapt import adapt_bundle  # noqa: PLC0415

    # One bundle's features and head: ClassifierBundle.load refuses a reading ensemble, naming a member folder.
    bundle = ClassifierBundle.load(args.model, precision=args.precision)
    r = adapt_bundle(bundle, args.data, args.out, class_map=args.class_map, polarity=args.polarity,
                     crop=args.crop, readout=args.readout, seed=args.seed)
    cv = r["cross_validated"]
    print(f"adapted to {len(r['per_class'])} classes from {r['n_images']} labelled images (reading the "
          f"{r['readout']}, C={r['C']}); "
          f"cross-validated accuracy {cv['accuracy']:.2%}, macro F1 {cv['macro_f1']:.3f}")
    print(f"wrote the new bundle to {args.out} (adapt.json beside bundle.json)")


def cmd_calibrate(args):
    from ..workflows.calibrate import calibrate_bundle  # noqa: PLC0415

    f = calibrate_bundle(args.model, args.data, part=args.part, accept=args.accept, split_seed=args.split_seed,
                         precision=args.precision)
    c = f["calibration"]
    thr = f["unknown"]["thresholds"]
    print(f"temperature {f['temperature']:.3f} fitted on {c['n_images']} {c['part']} images: ECE "
          f"{c['ece_before']:.3f} -> {c['ece_after']:.3f}; unknown thresholds (accept {args.accept:.0%} of known "
          f"images): max probability {thr['msp']:.3f}, energy {thr['energy']:.3f}")
    print(f"updated {Path(args.model) / 'bundle.json'}")


def cmd_ensemble(args):
    from ..probe import build_ensemble  # noqa: PLC0415
    from ..utils import read_json  # noqa: PLC0415

    out = build_ensemble(args.bundles, args.out, names=args.names, calibration_from=args.calibration_from)
    meta = read_json(out / "bundle.json")
    state = (f"calibration of {args.calibration_from} (temperature {meta['temperature']:.3f})" if args.calibration_from
             else "uncalibrated (temperature 1, no unknown threshold)")
    own = [n for n in meta["members"] if (out / n / "backbone").is_dir()]
    shared = f"members on their own backbones: {', '.join(own)}" if own else "on one backbone"
    print(f"wrote the reading ensemble {out}: {', '.join(f'{n}/ ({b})' for n, b in zip(meta['members'], args.bundles))} "
          f"{shared}; {state}")
    if not args.calibration_from:
        print(f"next: diffprobe calibrate --model {out} --data SPLIT.csv, then diffprobe export {out} --out MODEL "
              f"--split SPLIT.csv")


def cmd_export(args):
    from ..workflows.export_model import export_model  # noqa: PLC0415

    r = export_model(args.bundle, args.out, split=args.split, fp16=not args.fp32, head_fp16=args.fp16_head,
                     overwrite=args.overwrite, polarity=args.polarity, crop=args.crop,
                     model_version=args.model_version, ledger=args.ledger)
    print(f"wrote {args.out}" + (f": test accuracy {r['accuracy']:.2%}, macro F1 {r['macro_f1']:.3f} on "
                                 f"{r['n_images']} images (test_metrics.json)" if r else ""))


def _size_scale(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number, got {text!r}")
    return value


def add_size_scale_arg(s) -> None:
    s.add_argument("--size-scale", type=_size_scale, default=None, metavar="auto|FACTOR",
                   help="for images of another instrument: multiply the object sizes the model reads by FACTOR "
                        "(the model's pixels per unit length over these images'), or 'auto': estimate it from "
                        "these images' median sizes (right when they hold organisms of about the training "
                        "sizes). Default: sizes as measured")


def _severities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated severities 1..5, got {text!r}") from None
    if not values or any(not 1 <= v <= 5 for v in values):
        raise argparse.ArgumentTypeError(f"severities must be between 1 and 5, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_commands(sub) -> None:
    s = sub.add_parser("evaluate", help="metrics of a classifier bundle on another labelled dataset")
    s.add_argument("--model", required=True, help="bundle folder (PROBE_OUT/bundle) or reading ensemble")
    s.add_argument("--data", required=True, help="labelled image folder, manifest CSV or EcoTaxa TSV")
    s.add_argument("--class-map", help="CSV group,model_pattern,data_pattern to evaluate coarser groups")
    option(s, "--part", EvaluateConfig, help="train | val | test | all (default {default} images)")
    s.add_argument("--out", required=True, help="folder for metrics.json, report.md, confusion.png")
    option(s, "--seed", EvaluateConfig, type=int, help="seed of the synthetic prior-shift samples")
    add_size_scale_arg(s)
    add_views_arg(s)
    add_precision_arg(s)
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("shift", help="accuracy under instrument-like shifts (blur, noise, contrast, ...)")
    s.add_argument("--model", required=True, help="bundle folder or reading ensemble")
    s.add_argument("--data", required=True, help="split CSV (its test part is used) or labelled folder")
    s.add_argument("--out", required=True, help="folder for shift.json, shift.md, robustness.png")
    s.add_argument("--shifts", type=_names, help="comma-separated subset of defocus,noise,contrast,illumination,"
                                                 "resolution,jpeg,margin,texture,overlay (default: all)")
    option(s, "--severities", ShiftConfig, type=_severities)
    option(s, "--part", ShiftConfig, help="which part of the split (default {default})")
    option(s, "--seed", ShiftConfig, type=int, help="seed of the random shifts (noise, lighting)")
    option(s, "--split-seed", ShiftConfig, type=int, help="seed used to split a folder (as 'diffprobe split')")
    add_precision_arg(s)
    s.set_defaults(fn=cmd_shift)

    s = sub.add_parser("predict", help="classify new images: predictions CSV + per-sample abundances")
    s.add_argument("--model", required=True, help="bundle folder or reading ensemble")
    s.add_argument("images", nargs="+", help="image folders (searched recursively), image files or .csv/.tsv lists")
    s.add_argument("--out", required=True, help="predictions CSV (abundances and skipped files go beside it)")
    option(s, "--batch-size", PredictConfig, type=int)
    option(s, "--shard-size", PredictConfig, type=int,
           help="images per shard (default {default}): each finished shard is saved beside --out, so an "
                "interrupted run resumes where it stopped; under torchrun the processes share the shards")
    add_size_scale_arg(s)
    option(s, "--format", PredictConfig, choices=("csv", "kaggle"),
           help="csv (default): path, top-3 labels with probabilities, unknown flag; kaggle: the 2015 "
                "NDSB submission layout (image,<class 1>,...,<class C>: file name and every class's "
                "calibrated probability, in the bundle's class order)")
    add_views_arg(s)
    add_precision_arg(s)
    s.set_defaults(fn=cmd_predict)

    s = sub.add_parser("adapt", help="few-shot adaptation: a new head for a few labelled images of a new "
                                     "instrument, on the frozen features (seconds)")
    s.add_argument("--model", required=True, help="bundle folder to adapt (of a reading ensemble: one member folder)")
    s.add_argument("--data", required=True, help="labelled images of the new data: folder, manifest CSV or EcoTaxa TSV")
    s.add_argument("--class-map", help="CSV group,model_pattern,data_pattern: adapt to these groups instead of "
                                       "the data's own classes")
    s.add_argument("--out", required=True, help="folder for the new bundle")
    option(s, "--polarity", AdaptConfig, choices=("auto", "fixed"),
           help="auto (default): each image's background decides whether it is inverted (bright-field "
                "and dark-field crops both work); fixed: as the bundle was trained")
    s.add_argument("--crop", action=argparse.BooleanOptionalAction, default=None,
                   help="cut each image down to the organism plus a margin (--no-crop: keep the frame); default: "
                        "as the bundle. Pays where the new instrument frames its objects loosely")
    option(s, "--readout", AdaptConfig, choices=READOUTS,
           help="what the new output layer reads: hidden (the bundle's MLP hidden layer, trained on its own "
                "labels), features (the frozen features), or auto (default: both fitted, the lower "
                "cross-validated log loss kept)")
    option(s, "--seed", AdaptConfig, type=int, help="seed of the cross-validation folds")
    add_precision_arg(s)
    s.set_defaults(fn=cmd_adapt)

    s = sub.add_parser("calibrate", help="fit temperature, unknown threshold and val confusion of a bundle")
    s.add_argument("--model", required=True, help="bundle folder or reading ensemble (bundle.json is rewritten)")
    s.add_argument("--data", required=True, help="split CSV (its val part is used) or labelled folder")
    option(s, "--part", CalibrateConfig, help="which part of the split (default {default})")
    option(s, "--accept", CalibrateConfig, type=float, help="share of known images to accept (default {default})")
    option(s, "--split-seed", CalibrateConfig, type=int)
    add_precision_arg(s)
    s.set_defaults(fn=cmd_calibrate)

    s = sub.add_parser("ensemble", help="an ensemble: bundles that each read the images their own way (e.g. cut to "
                                        "the organism, as framed) or on their own backbone (networks trained apart), "
                                        "log-probabilities averaged")
    s.add_argument("bundles", nargs="+", help="two or more bundle folders of the same classes (in the same order) "
                                              "and image size")
    s.add_argument("--out", required=True, help="new folder for the ensemble: bundle.json, backbone/ (once), a "
                                                "folder per member (with its own backbone/ where it differs)")
    s.add_argument("--names", type=_names, help="comma-separated member folder names, one per bundle (default: "
                                                "crop / frame after each bundle's preprocessing, else member0, ...)")
    s.add_argument("--calibration-from", help="a calibrated ensemble of the same classes to take the temperature, "
                                              "unknown thresholds and val confusion from: for members refitted on "
                                              "train + val (fuse --refit), calibrate the ensemble of their train-only "
                                              "heads and pass it here")
    s.set_defaults(fn=cmd_ensemble)

    s = sub.add_parser("export", help="a bundle as a model folder to ship: fp16 weights, its split, its test metrics")
    s.add_argument("bundle", help="bundle folder (PROBE_OUT/bundle) or reading ensemble")
    s.add_argument("--out", required=True, help="model folder to write (e.g. models/ndsb); its README.md is kept")
    s.add_argument("--split", help="the split CSV the probe was chosen on: copied, and its test part evaluated")
    s.add_argument("--fp32", action="store_true", help="keep the backbone weights in fp32 (default: cast to fp16)")
    s.add_argument("--fp16-head", action="store_true",
                   help="store the head's weights in fp16 (half its size; it still computes in fp32)")
    s.add_argument("--overwrite", action="store_true", help="replace the model already in --out")
    s.add_argument("--polarity", choices=("auto", "fixed"),
                   help="set the preprocessing polarity: auto lets each image's background decide whether it is "
                        "inverted (bright- and dark-field instruments alike); default: as the bundle was trained")
    s.add_argument("--crop", action=argparse.BooleanOptionalAction, default=None,
                   help="cut each image down to the organism plus a margin before the model reads it (--no-crop: "
                        "keep the frame); default: as the bundle was trained; refused for a reading ensemble")
    s.add_argument("--model-version", help="the version written into bundle.json (e.g. 5.0.0)")
    s.add_argument("--ledger", help="a CSV to which this read of the test split is appended (date, model, version, "
                                    "commit, metrics), e.g. results/test_reads.csv")
    s.set_defaults(fn=cmd_export)

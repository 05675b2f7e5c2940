"""Commands of the core pipeline (``split``, ``summary``, ``synth``, ``pretrain``, ``features``, ``probe``,
``fuse``, ``cluster``, ``demo``) and ``study`` (all of them from a config file): each parses, calls
``diffprobe.workflows`` or the library, and prints where the results went."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config.backbones import POOLINGS, UNetConfig
from ..config.data import SynthConfig
from ..config.evaluate import ClusterConfig
from ..config.features import VIEWS, ExtractConfig, FeatureSpec
from ..config.pretrain import DEFAULT_MINUTES, PretrainConfig
from ..config.probe import HEADS, FusionConfig, GridProbeConfig, MLPProbeConfig, ProbeRunConfig
from ..workflows.config import DemoConfig
from .args import add_precision_arg, add_split_args, add_training_args, floats, ints, manifest_for, option, shown, strs


def cmd_split(args):
    from ..workflows.pipeline import split  # noqa: PLC0415

    m = split(args.data, args.out, setting=args.setting, per_class=args.per_class, val=args.val, test=args.test,
              seed=args.seed)
    print(f"{len(m)} images, {len(m.classes)} classes; train/val/test = "
          f"{sum(s == 'train' for s in m.splits)}/{sum(s == 'val' for s in m.splits)}/"
          f"{sum(s == 'test' for s in m.splits)} -> {args.out}")


def cmd_summary(args):
    from ..workflows.datasets import summarize  # noqa: PLC0415

    s = summarize(args.data, args.out, labelled=not args.unlabelled)
    print(f"{s['n_images']} images in {s['n_classes']} classes; largest {s['largest']}, smallest {s['smallest']}, "
          f"imbalance {s['imbalance_ratio']:.0f}:1; {s['ignored_files']} files ignored")
    print(f"wrote {args.out}/summary.json, class_counts.png, contact_sheet.png")


def cmd_synth(args):
    from ..workflows.datasets import write_synthetic  # noqa: PLC0415

    write_synthetic(args.out, n_per_class=args.n_per_class, size=args.size, long_tail=args.long_tail, seed=args.seed)
    print(f"synthetic plankton images -> {args.out}")


def cmd_pretrain(args):
    from ..workflows.pipeline import run_pretrain  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.steps is None and args.minutes is None:
        args.minutes = DEFAULT_MINUTES
    cfg = PretrainConfig(unet=UNetConfig(image_size=args.image_size, channels=args.channels,
                                         layers_per_block=args.layers_per_block, attention=args.attention,
                                         space_to_depth=args.space_to_depth),
                         batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, steps=args.steps,
                         minutes=args.minutes, checkpoint_every=args.checkpoint_every, seed=args.seed,
                         precision=args.precision, invert=not args.no_invert,
                         flatfield=not args.no_flatfield)
    manifest = manifest_for(args, out)
    run_pretrain(manifest, out, cfg, resume=args.resume)
    print(f"model (EMA weights, diffusers format) -> {out}/unet; samples -> {out}/samples.png")


def cmd_features(args):
    from ..workflows.pipeline import run_features  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = FeatureSpec(timesteps=args.timesteps, blocks=args.blocks, pooling=args.pooling, n_noise=args.n_noise,
                       views=args.views, seed=args.seed, precision=args.precision)
    manifest = manifest_for(args, out)
    store = run_features(args.model, manifest, out, spec, batch_size=args.batch_size, crop=args.crop)
    print(f"{len(store)} images x {len(store.pairs)} (block, timestep) pairs -> {store.path}")


def cmd_probe(args):
    from ..probe import GridProbe  # noqa: PLC0415
    from ..workflows.probe import run_probe  # noqa: PLC0415

    # Options left unset keep GridProbe's own defaults (one place for them).
    given = {k: getattr(args, k) for k in ("epochs", "lr", "weight_decays") if getattr(args, k) is not None}
    if args.no_whiten:
        given["whiten"] = None
    probe = GridProbe(**given, class_balanced=args.class_balanced, seed=args.seed, precision=args.precision)
    r = run_probe(args.features, args.out, probe=probe, max_gb=args.max_gb)
    if not r:  # another process of a distributed run; the main one reports
        return
    b = r["best"]
    print(f"best pair (chosen on val): {b['block']} t={b['timestep']}: test top-1 {b['test_accuracy']:.2%}, "
          f"macro F1 {b['test_macro_f1']:.3f} (chance {r['chance_accuracy']:.2%})")
    print(f"wrote {args.out}/results.json, report.md, heatmap.png, confusion.png, bundle/")


def cmd_fuse(args):
    from ..probe import GridProbe, MLPProbe  # noqa: PLC0415
    from ..workflows.fusion import fuse_pairs  # noqa: PLC0415

    r = fuse_pairs(args.features, args.results, args.out, ks=args.ks, head=args.head, metadata=args.metadata,
                   metadata_weight=args.metadata_weight, refit=args.refit, probe=GridProbe(class_balanced=args.class_balanced, seed=args.seed, precision=args.precision),
                   mlp=MLPProbe(seed=args.seed, ensemble=args.ensemble, precision=args.precision))
    b, s = r["best"], r["best_single_pair"]
    print(f"{args.head} head on the top {b['k']} pairs{' + object metadata' if args.metadata else ''} (k chosen on "
          f"val): test top-1 {b['test_accuracy']:.2%}, macro F1 {b['test_macro_f1']:.3f}, log loss "
          f"{b['test_log_loss']:.3f}; best single pair {s['test_accuracy']:.2%}, {s['test_macro_f1']:.3f}")
    if "refit" in r:
        f = r["refit"]
        print(f"refit on train + val ({f['images']} images, epoch {f['epoch']}; the bundled head): test top-1 "
              f"{f['test_accuracy']:.2%}, macro F1 {f['test_macro_f1']:.3f}, log loss {f['test_log_loss']:.3f}")
    print(f"wrote {args.out}/fusion.json, fusion.md" + (", bundle/" if "bundle" in r else ""))


def cmd_study(args):
    from ..workflows.study import run_study  # noqa: PLC0415

    r = run_study(args.config, redo=args.redo)
    print(f"study {r['name']}: stages {', '.join(r['stages'])} done; report -> {r['results_dir']}/study.md, "
          f"study.html, study.json")


def cmd_cluster(args):
    from ..workflows.pipeline import run_cluster  # noqa: PLC0415
    from ..utils import read_json  # noqa: PLC0415

    results = read_json(args.results) if args.results else None
    s = run_cluster(args.features, args.out, block=args.block, timestep=args.timestep, split=args.split, k=args.k,
                    seed=args.seed, results=results)
    print(f"k-means k={s['k']} on {s['block']} t={s['timestep']} ({s['split']}): NMI {s['nmi']:.3f}, "
          f"ARI {s['ari']:.3f}, purity {s['purity']:.3f} -> {args.out}/cluster.json")


def cmd_demo(args):
    from ..workflows.pipeline import demo  # noqa: PLC0415

    from ..utils import read_json  # noqa: PLC0415

    r = demo(args.out, data=args.data, steps=args.steps, image_size=args.image_size, seed=args.seed,
             precision=args.precision)
    print_results_table(r)
    seconds = read_json(Path(args.out) / "timing.json")["demo_wall_seconds"]
    print(f"\nwrote {args.out}/results.json, report.md, heatmap.png, confusion.png, cluster.json, bundle/ "
          f"in {seconds:.0f} s")


def print_results_table(r: dict) -> None:
    rows = sorted(r["grid"], key=lambda g: -g["val_accuracy"])[:10]
    print(f"\n{'block':>8} {'t':>5} {'val acc':>8} {'test acc':>9} {'macro F1':>9}")
    for g in rows:
        print(f"{g['block']:>8} {g['timestep']:>5} {g['val_accuracy']:>8.2%} {g['test_accuracy']:>9.2%} "
              f"{g['test_macro_f1']:>9.3f}")
    b = r["best"]
    print(f"\nbest (chosen on val): {b['block']} t={b['timestep']}  test top-1 {b['test_accuracy']:.2%}  "
          f"macro F1 {b['test_macro_f1']:.3f}  chance {r['chance_accuracy']:.2%}")
    if "cluster" in r:
        c = r["cluster"]
        print(f"k-means (k={c['k']}): NMI {c['nmi']:.3f}  ARI {c['ari']:.3f}  purity {c['purity']:.3f}")


def add_commands(sub) -> None:
    s = sub.add_parser("split", help="stratified train/val/test split of a dataset, saved as a manifest CSV")
    s.add_argument("--data", required=True, help="image folder (one sub-folder per class) or manifest CSV")
    s.add_argument("--out", required=True, help="manifest CSV to write")
    add_split_args(s)
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("summary", help="class counts, imbalance, class-count plot and contact sheet")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True, help="folder for summary.json and the PNGs")
    s.add_argument("--unlabelled", action="store_true", help="a flat folder of images without classes")
    s.set_defaults(fn=cmd_summary)

    s = sub.add_parser("synth", help="write a synthetic plankton dataset (for trying diffprobe out)")
    s.add_argument("--out", required=True)
    option(s, "--n-per-class", SynthConfig, type=int)
    option(s, "--size", SynthConfig, type=int)
    s.add_argument("--long-tail", action="store_true")
    option(s, "--seed", SynthConfig, type=int)
    s.set_defaults(fn=cmd_synth)

    s = sub.add_parser("pretrain", help="train a DDPM U-Net denoiser on the (unlabelled) train images",
                       epilog="--backbone rcdit|supervised|simclr|dino|mae runs 'rcdit-pretrain' or "
                              "'baseline --method ...' with the remaining options")
    s.add_argument("--backbone", default="ddpm", help="ddpm (default), or another backbone's trainer (see below)")
    s.add_argument("--data", required=True, help="image folder or manifest CSV (labels are not used)")
    s.add_argument("--out", required=True, help="run folder (checkpoints, unet/, samples.png)")
    option(s, "--image-size", UNetConfig, type=int)
    option(s, "--channels", UNetConfig, type=ints, help="U-Net widths per level (default {default})")
    option(s, "--layers-per-block", UNetConfig, type=int)
    s.add_argument("--attention", action="store_true", help="self-attention at the lowest resolution")
    option(s, "--space-to-depth", UNetConfig, type=int,
           help="fold f x f pixels into channels (pixel unshuffle): --image-size 64 --space-to-depth 2 runs "
                "the U-Net on a 32 x 32 grid at about the cost of 32 px images (default {default}: off)")
    add_training_args(s, PretrainConfig)
    s.set_defaults(fn=cmd_pretrain)

    s = sub.add_parser("features", help="pooled features of a frozen model at every (block, timestep)")
    s.add_argument("--model", required=True, help="run folder from 'diffprobe pretrain'")
    s.add_argument("--data", required=True, help="image folder or manifest CSV (e.g. RUN/split.csv)")
    s.add_argument("--out", required=True, help="folder holding feature stores (one per key)")
    option(s, "--timesteps", FeatureSpec, type=ints)
    option(s, "--blocks", FeatureSpec, type=strs, help="block names (default: all)")
    option(s, "--pooling", FeatureSpec, help=" | ".join(POOLINGS))
    option(s, "--n-noise", FeatureSpec, type=int, help="average over this many noise draws")
    option(s, "--views", FeatureSpec, type=int, choices=VIEWS,
           help="average over this many flips / quarter turns of each image (test-time augmentation)")
    option(s, "--batch-size", ExtractConfig, type=int)
    option(s, "--crop", ExtractConfig, action=argparse.BooleanOptionalAction,
           help="cut each image to its organism plus a margin before the model reads it (--no-crop: keep the "
                "frame); default: as the model was pretrained; the bundle made from these features keeps it")
    add_precision_arg(s, FeatureSpec)
    add_split_args(s)
    s.set_defaults(fn=cmd_features)

    s = sub.add_parser("probe", help="a linear probe on every (block, timestep) pair; best chosen on val")
    s.add_argument("--features", required=True, help="feature store folder (printed by 'diffprobe features')")
    s.add_argument("--out", required=True)
    s.add_argument("--epochs", type=int, help=f"at most this many epochs (default {shown(GridProbeConfig, 'epochs')})")
    s.add_argument("--lr", type=float, help=f"Adam learning rate (default {shown(GridProbeConfig, 'lr')})")
    s.add_argument("--weight-decays", type=floats,
                   help=f"L2 grid, best chosen on val (default {shown(GridProbeConfig, 'weight_decays')})")
    s.add_argument("--no-whiten", action="store_true",
                   help="train on standardised features without PCA-whitening (slower to converge)")
    s.add_argument("--class-balanced", action="store_true", help="inverse-frequency class weights (long tail)")
    option(s, "--seed", GridProbeConfig, type=int)
    option(s, "--max-gb", ProbeRunConfig, type=float,
           help="RAM for features at a time: larger stores are probed in chunks of pairs (default {default})")
    add_precision_arg(s, GridProbeConfig)
    s.set_defaults(fn=cmd_probe)

    s = sub.add_parser("fuse", help="one head on the concatenated features of the top pairs (k chosen on val), "
                                    "written as a classifier bundle")
    s.add_argument("--features", required=True, help="the feature store that 'diffprobe probe' read")
    s.add_argument("--results", required=True, help="its results.json (ranks the pairs by val accuracy)")
    s.add_argument("--out", required=True, help="folder for fusion.json, fusion.md")
    option(s, "--ks", FusionConfig, type=ints, help="numbers of pairs to try (default {default})")
    option(s, "--head", FusionConfig, choices=HEADS,
           help="linear probe (the paper's readout, default) or a one-hidden-layer MLP")
    s.add_argument("--metadata", action="store_true",
                   help="append the objects' size and shape measurements (stored with the features) to the input")
    option(s, "--metadata-weight", FusionConfig, type=float,
           help="MLP head only: the measurements' weight beside the features, after standardisation (default {default})")
    option(s, "--ensemble", MLPProbeConfig, type=int,
           help="MLP head only: average this many heads from consecutive seeds into one (default {default})")
    s.add_argument("--refit", action="store_true",
                   help="MLP head only: once val has chosen k, the settings and the epoch, train the chosen head "
                        "again on train + val and bundle that one")
    s.add_argument("--class-balanced", action="store_true", help="inverse-frequency class weights (long tail)")
    option(s, "--seed", GridProbeConfig, type=int)
    add_precision_arg(s, GridProbeConfig)
    s.set_defaults(fn=cmd_fuse)

    s = sub.add_parser("study", help="the whole study from a config file (configs/*.toml), resumable stage by stage")
    s.add_argument("config", help="TOML config, e.g. configs/ndsb.toml")
    s.add_argument("--redo", type=strs, default=(), help="comma-separated stages to run again even if done")
    s.set_defaults(fn=cmd_study)

    s = sub.add_parser("cluster", help="k-means on one pair's features: NMI, ARI, purity")
    s.add_argument("--features", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--results", help="results.json of 'diffprobe probe': cluster its best pair")
    s.add_argument("--block")
    s.add_argument("--timestep", type=int)
    option(s, "--split", ClusterConfig, help="train | val | test | all")
    s.add_argument("--k", type=int, help="number of clusters (default: number of classes)")
    option(s, "--seed", ClusterConfig, type=int)
    s.set_defaults(fn=cmd_cluster)

    s = sub.add_parser("demo", help="the whole pipeline on synthetic plankton (or --data) in minutes")
    s.add_argument("--out", required=True)
    s.add_argument("--data", help="a real image folder instead of synthetic data")
    option(s, "--steps", DemoConfig, type=int, help="pretraining steps (default {default})")
    option(s, "--image-size", DemoConfig, type=int)
    option(s, "--seed", DemoConfig, type=int)
    add_precision_arg(s, DemoConfig)
    s.set_defaults(fn=cmd_demo)

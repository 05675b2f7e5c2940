"""Commands of the controlled comparison: ``baseline`` (train one supervised / SimCLR / DINO / MAE
baseline) and ``compare`` (every method, both settings, one table)."""

from __future__ import annotations

from pathlib import Path

from ..config.backbones import ARCHS, ResNetConfig, UNetConfig, ViTConfig
from ..config.probe import FusionConfig
from ..config.pretrain import DEFAULT_ARCH, BaselineConfig
from ..config.pretrain import METHODS as BASELINE_METHODS
from ..workflows.config import CompareConfig
from .args import (add_precision_arg, add_preprocess_args, add_split_args, counts_or_all, ints, manifest_for, option,
                   shown, strs)


def _arch_args(s) -> None:
    s.add_argument("--resnet-widths", type=ints, help=f"ResNet stage widths (default {shown(ResNetConfig, 'widths')})")
    s.add_argument("--resnet-depths", type=ints,
                   help=f"BasicBlocks per ResNet stage (default {shown(ResNetConfig, 'depths')})")
    s.add_argument("--vit-dim", type=int, help=f"ViT width (default {shown(ViTConfig, 'embed_dim')})")
    s.add_argument("--vit-depth", type=int, help=f"ViT blocks (default {shown(ViTConfig, 'depth')})")
    s.add_argument("--vit-heads", type=int, help=f"ViT attention heads (default {shown(ViTConfig, 'num_heads')})")
    s.add_argument("--patch-size", type=int, help=f"ViT patch size (default {shown(ViTConfig, 'patch_size')})")


def _arch(args, method: str, name: str | None):
    from dataclasses import replace  # noqa: PLC0415

    from ..config.pretrain import default_arch  # noqa: PLC0415

    arch = default_arch(method, args.image_size, name)
    if isinstance(arch, ResNetConfig):
        changes = {"widths": args.resnet_widths, "depths": args.resnet_depths}
    elif not isinstance(arch, ViTConfig):
        changes = {}
    else:
        changes = {"embed_dim": args.vit_dim, "depth": args.vit_depth, "num_heads": args.vit_heads,
                   "patch_size": args.patch_size}
    return replace(arch, **{k: v for k, v in changes.items() if v is not None})


def cmd_baseline(args):
    from ..workflows.pipeline import run_baseline  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = BaselineConfig(method=args.method, arch=_arch(args, args.method, args.arch),
                         budget_images=args.budget_images, batch_size=args.batch_size, lr=args.lr,
                         checkpoint_every=args.checkpoint_every, seed=args.seed, precision=args.precision,
                         invert=not args.no_invert, flatfield=not args.no_flatfield,
                         label_smoothing=args.label_smoothing, scale_jitter=args.scale_jitter, rotate=args.rotate,
                         ema_decay=args.ema_decay)
    run_baseline(manifest_for(args, out), out, cfg, resume=args.resume)
    print(f"{args.method} backbone ({cfg.arch.name}) -> {out} (model.safetensors, backbone.json); "
          f"features: diffprobe features --model {out} --timesteps 0 ...")


def cmd_compare(args):
    from dataclasses import replace  # noqa: PLC0415

    from ..probe import GridProbe  # noqa: PLC0415
    from ..workflows.compare import compare, compare_curves, default_configs  # noqa: PLC0415

    configs = default_configs(args.methods, budget_images=args.budget_images, image_size=args.image_size,
                              seed=args.seed, dino_arch=args.dino_arch)
    for m, cfg in configs.items():
        cfg = configs[m] = replace(cfg, precision=args.precision)
        if m == "ddpm" and args.ddpm_channels:
            configs[m] = replace(cfg, unet=UNetConfig(image_size=args.image_size, channels=args.ddpm_channels))
        elif m != "ddpm":
            configs[m] = replace(cfg, arch=_arch(args, m, args.dino_arch if m == "dino" else None))
    common = dict(methods=args.methods, settings=args.settings, seed=args.seed, image_size=args.image_size,
                  per_class=args.per_class, val=args.val, test=args.test, configs=configs, timesteps=args.timesteps,
                  shots=args.shots, precision=args.precision,
                  fusion=FusionConfig(ks=args.ks, head="mlp", metadata=True, metadata_weight=args.metadata_weight)
                  if args.readout else None,
                  probe=GridProbe(class_balanced=args.class_balanced, seed=args.seed, precision=args.precision,
                                  **({"epochs": args.probe_epochs} if args.probe_epochs else {})))
    if args.budgets:
        c = compare_curves(args.data, args.out, budgets=args.budgets, label_shots=args.label_shots, draws=args.draws,
                           **common)
        print(f"\n{len(c['budgets'])} budgets, {len(c['rows'])} rows, {len(c['label_curves'])} label-curve points; "
              f"wrote {args.out}/curves.json, curves.md, curves_compute.png, curves_labels.png")
        return
    r = compare(args.data, args.out, budget_images=args.budget_images, **common)
    print(f"\n{'setting':>9} {'method':>11} {'eval':>32} {'top-1':>7} {'macro F1':>9} {'bal. acc':>9} "
          f"{'F1 tail':>8} {'NMI':>6}")
    for row in r["rows"]:
        tail = "–" if row["f1_tail"] is None else f"{row['f1_tail']:.3f}"
        nmi = "–" if row["nmi"] is None else f"{row['nmi']:.3f}"
        print(f"{row['setting']:>9} {row['method']:>11} {row['eval']:>32} {row['accuracy']:>7.1%} "
              f"{row['macro_f1']:>9.3f} {row['balanced_accuracy']:>9.1%} {tail:>8} {nmi:>6}")
    print(f"\ntrained {len(r['trained'])} runs, reused {len(r['reused'])}; wrote {args.out}/compare.json, "
          f"compare.md, compare.png in {r['wall_seconds'] / 60:.1f} min")


def cmd_compare_merge(args):
    from ..workflows.compare import merge_curves  # noqa: PLC0415

    r = merge_curves(args.sources, args.out)
    print(f"{len(r['budgets'])} budgets ({', '.join(f'{b:,}' for b in r['budgets'])}), {len(r['rows'])} rows, "
          f"{len(r['label_curves'])} label-curve points; wrote {args.out}/curves.json, curves.md, "
          f"curves_compute.png, curves_labels.png")


def add_commands(sub) -> None:
    s = sub.add_parser("baseline", help="train a supervised / SimCLR / DINO / MAE baseline from scratch on the "
                                        "train images, saved as a backbone folder")
    s.add_argument("--method", required=True, choices=BASELINE_METHODS)
    s.add_argument("--data", required=True, help="image folder or manifest CSV (labels used by supervised only)")
    s.add_argument("--out", required=True, help="run folder (checkpoint/, model.safetensors, summary.json)")
    s.add_argument("--arch", choices=tuple(ARCHS),
                   help="backbone (default: ResNet; ViT for MAE; convnet: a plain 5-block CNN)")
    option(s, "--image-size", ResNetConfig, type=int)
    option(s, "--budget-images", BaselineConfig, type=int, help="training images seen (default {default})")
    option(s, "--batch-size", BaselineConfig, type=int)
    option(s, "--lr", BaselineConfig, type=float)
    option(s, "--checkpoint-every", BaselineConfig, type=int, help="steps between checkpoints")
    option(s, "--label-smoothing", BaselineConfig, type=float,
           help="supervised: label smoothing of the cross-entropy (default {default})")
    option(s, "--scale-jitter", BaselineConfig, type=float,
           help="supervised: zoom each training image by a factor in [1 - s, 1 + s] (default {default})")
    option(s, "--rotate", BaselineConfig, type=float,
           help="supervised: turn each training image by an angle in [-r, r] degrees (default {default}; 45 with "
                "the quarter turns reaches every angle)")
    option(s, "--ema-decay", BaselineConfig, type=float,
           help="supervised: export an exponential moving average of the weights with this decay (default: off)")
    add_precision_arg(s, BaselineConfig)
    add_preprocess_args(s)
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _arch_args(s)
    add_split_args(s)
    s.set_defaults(fn=cmd_baseline)

    s = sub.add_parser("compare", help="DDPM features vs supervised / SimCLR / DINO / MAE baselines: same split, "
                                       "same budget, same probe, natural and balanced settings")
    s.add_argument("--data", required=True, help="image folder (one sub-folder per class) or manifest CSV")
    s.add_argument("--out", required=True, help="folder for the runs and compare.json / .md / .png")
    option(s, "--methods", CompareConfig, type=strs, help="default {default}")
    option(s, "--settings", CompareConfig, type=strs, help="default {default}")
    option(s, "--budget-images", CompareConfig, type=int,
           help="training images seen by every method (default {default})")
    s.add_argument("--budgets", type=ints,
                   help="several budgets (e.g. 12800,64000,256000): the comparison at each, as curves against "
                        "pretraining CPU-hours, plus label-efficiency curves at the largest (replaces --budget-images)")
    option(s, "--label-shots", CompareConfig, type=counts_or_all,
           help="with --budgets: labelled images per class for the label curves (default "
                + ",".join("all" if k is None else str(k) for k in CompareConfig.label_shots) + ")")
    option(s, "--draws", CompareConfig, type=int, help="with --budgets: random draws per label count (default {default})")
    option(s, "--seed", CompareConfig, type=int, help="split, training and probe seed (default {default})")
    option(s, "--image-size", CompareConfig, type=int)
    option(s, "--per-class", CompareConfig, type=int,
           help="images per class in the balanced setting (default {default})")
    option(s, "--val", CompareConfig, type=float)
    option(s, "--test", CompareConfig, type=float)
    s.add_argument("--dino-arch", choices=("resnet", "vit"), help=f"DINO backbone (default {DEFAULT_ARCH['dino']})")
    s.add_argument("--ddpm-channels", type=ints, help=f"U-Net widths (default {shown(UNetConfig, 'channels')})")
    s.add_argument("--timesteps", type=ints, help="DDPM feature timesteps (default: the features command's)")
    option(s, "--shots", CompareConfig, type=ints,
           help="tail / head thresholds in training images per class (default {default})")
    s.add_argument("--probe-epochs", type=int, help="linear-probe epochs (default: the probe command's)")
    s.add_argument("--class-balanced", action="store_true", help="class-weighted probes (for every method)")
    s.add_argument("--readout", action="store_true",
                   help="also read every method the classifier recipe's way: an MLP head on its top-k pairs and the "
                        "objects' size and shape measurements, k chosen on val (an extra row per method)")
    option(s, "--ks", FusionConfig, type=ints, help="with --readout: numbers of pairs to try (default {default})")
    option(s, "--metadata-weight", FusionConfig, type=float,
           help="with --readout: the measurements' weight in the MLP head (default {default})")
    _arch_args(s)
    add_precision_arg(s, CompareConfig)
    s.set_defaults(fn=cmd_compare)

    s = sub.add_parser("compare-merge", help="join comparison grids built in pieces (budgets run apart, on other "
                                             "machines, one method per process) into one set of curves")
    s.add_argument("sources", nargs="+", help="folders written by 'diffprobe compare' (every compare.json and "
                                              "curves.json below them)")
    s.add_argument("--out", required=True, help="folder for curves.json, curves.md and the two figures")
    s.set_defaults(fn=cmd_compare_merge)

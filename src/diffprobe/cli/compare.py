"""Commands of the controlled comparison: ``baseline`` (train one supervised / SimCLR / DINO / MAE
baseline) and ``compare`` (every method, both settings, one table)."""

from __future__ import annotations

from pathlib import Path

from .args import add_precision_arg, add_preprocess_args, add_split_args, ints, manifest_for, strs

# The defaults of workflows.compare, spelled out so that 'diffprobe --help' does not import torch (a test keeps
# them equal).
METHODS = ("ddpm", "supervised", "simclr", "dino", "mae")
SETTINGS = ("natural", "balanced")
DEFAULT_BUDGET = 200_000


def _arch_args(s) -> None:
    s.add_argument("--resnet-widths", type=ints, help="ResNet stage widths (default 32,64,128,256)")
    s.add_argument("--resnet-depths", type=ints, help="BasicBlocks per ResNet stage (default 2,2,2,2)")
    s.add_argument("--vit-dim", type=int, help="ViT width (default 192)")
    s.add_argument("--vit-depth", type=int, help="ViT blocks (default 6)")
    s.add_argument("--vit-heads", type=int, help="ViT attention heads (default 3)")
    s.add_argument("--patch-size", type=int, help="ViT patch size (default 4)")


def _arch(args, method: str, name: str | None):
    from dataclasses import replace  # noqa: PLC0415

    from ..backbones.baselines import ResNetConfig  # noqa: PLC0415
    from ..pretrain.baselines import default_arch  # noqa: PLC0415

    arch = default_arch(method, args.image_size, name)
    if isinstance(arch, ResNetConfig):
        changes = {"widths": args.resnet_widths, "depths": args.resnet_depths}
    else:
        changes = {"embed_dim": args.vit_dim, "depth": args.vit_depth, "num_heads": args.vit_heads,
                   "patch_size": args.patch_size}
    return replace(arch, **{k: v for k, v in changes.items() if v is not None})


def cmd_baseline(args):
    from ..pretrain.baselines import BaselineConfig, run_baseline  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = BaselineConfig(method=args.method, arch=_arch(args, args.method, args.arch),
                         budget_images=args.budget_images, batch_size=args.batch_size, lr=args.lr,
                         checkpoint_every=args.checkpoint_every, seed=args.seed, precision=args.precision,
                         invert=not args.no_invert, flatfield=not args.no_flatfield)
    run_baseline(manifest_for(args, out), out, cfg, resume=args.resume)
    print(f"{args.method} backbone ({cfg.arch.name}) -> {out} (model.safetensors, backbone.json); "
          f"features: diffprobe features --model {out} --timesteps 0 ...")


def cmd_compare(args):
    from dataclasses import replace  # noqa: PLC0415

    from ..backbones.ddpm_unet import UNetConfig  # noqa: PLC0415
    from ..probe.linear import GridProbe  # noqa: PLC0415
    from ..workflows.compare import compare, default_configs  # noqa: PLC0415

    configs = default_configs(args.methods, budget_images=args.budget_images, image_size=args.image_size,
                              seed=args.seed, dino_arch=args.dino_arch)
    for m, cfg in configs.items():
        cfg = configs[m] = replace(cfg, precision=args.precision)
        if m == "ddpm" and args.ddpm_channels:
            configs[m] = replace(cfg, unet=UNetConfig(image_size=args.image_size, channels=args.ddpm_channels))
        elif m != "ddpm":
            configs[m] = replace(cfg, arch=_arch(args, m, args.dino_arch if m == "dino" else None))
    r = compare(args.data, args.out, methods=args.methods, settings=args.settings, budget_images=args.budget_images,
                seed=args.seed, image_size=args.image_size, per_class=args.per_class, val=args.val, test=args.test,
                configs=configs, timesteps=args.timesteps, shots=args.shots, precision=args.precision,
                probe=GridProbe(class_balanced=args.class_balanced, seed=args.seed, precision=args.precision,
                                **({"epochs": args.probe_epochs} if args.probe_epochs else {})))
    print(f"\n{'setting':>9} {'method':>11} {'eval':>12} {'top-1':>7} {'macro F1':>9} {'bal. acc':>9} "
          f"{'F1 tail':>8} {'NMI':>6}")
    for row in r["rows"]:
        tail = "–" if row["f1_tail"] is None else f"{row['f1_tail']:.3f}"
        nmi = "–" if row["nmi"] is None else f"{row['nmi']:.3f}"
        print(f"{row['setting']:>9} {row['method']:>11} {row['eval']:>12} {row['accuracy']:>7.1%} "
              f"{row['macro_f1']:>9.3f} {row['balanced_accuracy']:>9.1%} {tail:>8} {nmi:>6}")
    print(f"\ntrained {len(r['trained'])} runs, reused {len(r['reused'])}; wrote {args.out}/compare.json, "
          f"compare.md, compare.png in {r['wall_seconds'] / 60:.1f} min")


def add_commands(sub) -> None:
    s = sub.add_parser("baseline", help="train a supervised / SimCLR / DINO / MAE baseline from scratch on the "
                                        "train images, saved as a backbone folder")
    s.add_argument("--method", required=True, choices=METHODS[1:])
    s.add_argument("--data", required=True, help="image folder or manifest CSV (labels used by supervised only)")
    s.add_argument("--out", required=True, help="run folder (checkpoint/, model.safetensors, summary.json)")
    s.add_argument("--arch", choices=("resnet", "vit"), help="backbone (default: ResNet; ViT for MAE)")
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--budget-images", type=int, default=DEFAULT_BUDGET,
                   help=f"training images seen (default {DEFAULT_BUDGET})")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    add_precision_arg(s)
    add_preprocess_args(s)
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _arch_args(s)
    add_split_args(s)
    s.set_defaults(fn=cmd_baseline)

    s = sub.add_parser("compare", help="DDPM features vs supervised / SimCLR / DINO / MAE baselines: same split, "
                                       "same budget, same probe, natural and balanced settings")
    s.add_argument("--data", required=True, help="image folder (one sub-folder per class) or manifest CSV")
    s.add_argument("--out", required=True, help="folder for the runs and compare.json / .md / .png")
    s.add_argument("--methods", type=strs, default=METHODS, help=f"default {','.join(METHODS)}")
    s.add_argument("--settings", type=strs, default=SETTINGS, help=f"default {','.join(SETTINGS)}")
    s.add_argument("--budget-images", type=int, default=DEFAULT_BUDGET,
                   help=f"training images seen by every method (default {DEFAULT_BUDGET})")
    s.add_argument("--seed", type=int, default=0, help="split, training and probe seed (default 0)")
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--per-class", type=int, default=80, help="images per class in the balanced setting (default 80)")
    s.add_argument("--val", type=float, default=0.15)
    s.add_argument("--test", type=float, default=0.15)
    s.add_argument("--dino-arch", choices=("resnet", "vit"), help="DINO backbone (default resnet)")
    s.add_argument("--ddpm-channels", type=ints, help="U-Net widths (default 64,128,128)")
    s.add_argument("--timesteps", type=ints, help="DDPM feature timesteps (default: the features command's)")
    s.add_argument("--shots", type=ints, default=(20, 100),
                   help="tail / head thresholds in training images per class (default 20,100)")
    s.add_argument("--probe-epochs", type=int, help="linear-probe epochs (default: the probe command's)")
    s.add_argument("--class-balanced", action="store_true", help="class-weighted probes (for every method)")
    _arch_args(s)
    add_precision_arg(s)
    s.set_defaults(fn=cmd_compare)

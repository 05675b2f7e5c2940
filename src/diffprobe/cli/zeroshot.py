"""Commands of the second paper: ``rcdit-pretrain`` (train an RC-DiT) and ``zeroshot`` (classify without a
trained classifier)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import default_of
from ..config.backbones import POOLINGS, POOLS, PREDICTIONS, RCDiTConfig
from ..config.evaluate import DC_CONDITIONS, DiffusionClassifierConfig, ZeroShotConfig
from ..config.features import ExtractConfig
from ..config.pretrain import DEFAULT_MINUTES, ENCODER_VIEWS, T_SAMPLINGS, RCDiTPretrainConfig
from .args import add_precision_arg, add_split_args, add_training_args, ints, manifest_for, option, strs


def _schedule(text: str) -> tuple[tuple[int, int], ...]:
    """'4:10,8:3,16:1' -> ((4, 10), (8, 3), (16, 1))."""
    try:
        return tuple((int(n), int(k)) for n, k in (s.split(":") for s in strs(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SAMPLES:KEEP stages separated by commas (e.g. 4:10,8:3,16:1), "
                                         f"got {text!r}") from None


def cmd_rcdit_pretrain(args):
    from ..workflows.pipeline import run_rcdit_pretrain  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.steps is None and args.minutes is None:
        args.minutes = DEFAULT_MINUTES
    model = RCDiTConfig(image_size=args.image_size, enc_patch=args.enc_patch, enc_dim=args.enc_dim,
                        enc_depth=args.enc_depth, enc_heads=args.enc_heads, enc_pool=args.enc_pool,
                        dit_patch=args.dit_patch, dit_dim=args.dit_dim, dit_depth=args.dit_depth,
                        dit_heads=args.dit_heads, r_tokens=args.r_tokens,
                        prediction=args.prediction)
    cfg = RCDiTPretrainConfig(model=model, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                              r_dropout=args.r_dropout, t_sampling=args.t_sampling,
                              encoder_view=args.encoder_view, steps=args.steps, minutes=args.minutes,
                              checkpoint_every=args.checkpoint_every, seed=args.seed, precision=args.precision,
                              invert=not args.no_invert, flatfield=not args.no_flatfield)
    run_rcdit_pretrain(manifest_for(args, out), out, cfg, resume=args.resume)
    print(f"RC-DiT (EMA weights) -> {out}/rcdit.safetensors (backbone kind 'rcdit'); samples -> {out}/samples.png")


def cmd_zeroshot(args):
    from ..workflows.zeroshot import probe_representation, run_zeroshot  # noqa: PLC0415

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the probe's best pair, read the way the probe read it; or the options'
    representation = probe_representation(args.results) if args.results else {
        "block": args.block, "timestep": args.timestep, "pooling": args.pooling, "n_noise": args.n_noise}
    dc = None if args.no_diffusion else DiffusionClassifierConfig(
        schedule=args.dc_schedule, max_images=args.dc_max_images, shots=args.dc_shots, batch_size=args.dc_batch_size,
        t_range=args.dc_t_range, condition=args.dc_condition)
    cfg = ZeroShotConfig(**representation, shots=args.shots, episodes=args.episodes,
                         knn_k=args.knn, center=not args.no_center, positive=args.positive, diffusion=dc,
                         seed=args.seed, precision=args.precision)
    r = run_zeroshot(args.model, manifest_for(args, out), out, cfg, batch_size=args.batch_size)
    rep = r["representation"]
    print(f"representation {rep['block']} t={rep['timestep']} ({r['dim']} dims), {r['n_classes']} classes, "
          f"chance {r['chance_accuracy']:.2%}")
    for k, m in r["prototypes"].items():
        print(f"  prototypes, {k:>3} shots: accuracy {m['accuracy']:.2%}, macro F1 {m['macro_f1']:.3f}")
    print(f"  k-NN (k={r['knn']['k']}) weighted: accuracy {r['knn']['weighted']['accuracy']:.2%}")
    d = r["diffusion_classifier"]
    print(f"  diffusion classifier: skipped ({d['skipped']})" if "skipped" in d else
          f"  diffusion classifier ({d['n_images']} images): accuracy {d['accuracy']:.2%}, "
          f"{d['calls_per_image']} denoiser calls per image (exhaustive: {d['exhaustive_calls_per_image']})")
    if "binary" in r:
        b = r["binary"]
        print(f"  binary {b['pattern']!r}: two prototypes accuracy {b['two_prototypes']['accuracy']:.2%}, "
              f"F1 {b['two_prototypes']['f1']:.3f}; k-NN F1 {b['knn']['f1']:.3f}")
    print(f"wrote {out}/zeroshot.json, zeroshot.md")


def add_commands(sub) -> None:
    s = sub.add_parser("rcdit-pretrain", help="train an RC-DiT (ViT encoder + representation-conditioned DiT) "
                                              "on the (unlabelled) train images")
    s.add_argument("--data", required=True, help="image folder or manifest CSV (labels are not used)")
    s.add_argument("--out", required=True, help="run folder (checkpoints, rcdit.safetensors, samples.png)")
    option(s, "--image-size", RCDiTConfig, type=int)
    option(s, "--enc-patch", RCDiTConfig, type=int, help="encoder ViT patch size (default {default})")
    option(s, "--enc-dim", RCDiTConfig, type=int, help="encoder width = size of r (default {default})")
    option(s, "--enc-depth", RCDiTConfig, type=int)
    option(s, "--enc-heads", RCDiTConfig, type=int)
    option(s, "--enc-pool", RCDiTConfig, choices=POOLS, help="r from the CLS token or the mean")
    option(s, "--dit-patch", RCDiTConfig, type=int, help="DiT patch size on pixels (default {default})")
    option(s, "--dit-dim", RCDiTConfig, type=int)
    option(s, "--dit-depth", RCDiTConfig, type=int)
    option(s, "--dit-heads", RCDiTConfig, type=int)
    option(s, "--r-dropout", RCDiTPretrainConfig, type=float,
           help="share of images trained with a null r (default {default})")
    option(s, "--r-tokens", RCDiTConfig, type=int,
           help="r also given to the DiT as this many tokens it attends to (default {default}: adaLN only)")
    option(s, "--prediction", RCDiTConfig, choices=PREDICTIONS,
           help="the DiT predicts the noise (the paper's) or v, whose loss weighs the large timesteps, where only "
                "r can give the image back (default {default})")
    option(s, "--t-sampling", RCDiTPretrainConfig, choices=T_SAMPLINGS,
           help="timesteps drawn uniformly or weighted toward the large ones (default {default})")
    option(s, "--encoder-view", RCDiTPretrainConfig, choices=ENCODER_VIEWS,
           help="the encoder sees the same clean image as the denoiser, or its own flip / quarter turn of it "
                "(default {default})")
    add_training_args(s, RCDiTPretrainConfig)
    s.set_defaults(fn=cmd_rcdit_pretrain)

    s = sub.add_parser("zeroshot", help="zero-shot classification: prototypes, k-NN, diffusion classifier, "
                                        "binary detection (no classifier trained on labels)")
    s.add_argument("--model", required=True, help="backbone folder (RC-DiT run, baseline, or DDPM run)")
    s.add_argument("--data", required=True, help="split manifest CSV (references: train part; evaluated: test part)")
    s.add_argument("--out", required=True, help="folder for zeroshot.json, zeroshot.md and feature stores")
    s.add_argument("--block", help="block used as the representation (default: the backbone's own, e.g. 'encoder')")
    s.add_argument("--timestep", type=int, help="timestep of --block (needed for DDPM U-Net blocks)")
    s.add_argument("--results", help="results.json of 'diffprobe probe': use its best (block, timestep), pooling "
                                      "and noise ensemble")
    option(s, "--pooling", ZeroShotConfig, help=" | ".join(POOLINGS) + " (for --block feature maps)")
    option(s, "--n-noise", ZeroShotConfig, type=int, help="average the features over this many noise draws")
    option(s, "--shots", ZeroShotConfig, type=ints, help="references per class (0 = all; default {default})")
    option(s, "--episodes", ZeroShotConfig, type=int, help="seeded draws of the references per k (default {default})")
    option(s, "--knn", ZeroShotConfig, "knn_k", type=int, help="neighbours for k-NN (default {default})")
    s.add_argument("--no-center", action="store_true", help="do not subtract the train mean before L2 normalisation")
    s.add_argument("--positive", help="binary task: fnmatch pattern of the positive classes, e.g. 'copepod_*'")
    s.add_argument("--no-diffusion", action="store_true", help="skip the diffusion classifier")
    dc = DiffusionClassifierConfig
    option(s, "--dc-schedule", dc, "schedule", type=_schedule,
           help="diffusion-classifier stages SAMPLES:KEEP (default "
                + ",".join(f"{n}:{k}" for n, k in default_of(dc, "schedule")) + ")")
    option(s, "--dc-max-images", dc, "max_images", type=int,
           help="test images for the diffusion classifier (seeded subset; 0 = all; default {default})")
    option(s, "--dc-shots", dc, "shots", type=int, help="references per class for its prototypes (0 = all)")
    option(s, "--dc-t-range", dc, "t_range",
           help="timesteps LOW,HIGH its samples are drawn from, or 'auto': the bucket where the model's "
                "conditioning diagnostic says r matters most (default {default})")
    option(s, "--dc-condition", dc, "condition", choices=DC_CONDITIONS,
           help="each class scored with its prototype r or with the r of its reference nearest to the image "
                "(default {default})")
    option(s, "--dc-batch-size", dc, "batch_size", type=int, help="denoiser inputs per forward pass")
    option(s, "--batch-size", ExtractConfig, type=int, help="images per batch for feature extraction")
    add_precision_arg(s, ZeroShotConfig)
    add_split_args(s)
    s.set_defaults(fn=cmd_zeroshot)

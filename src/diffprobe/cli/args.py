"""Options shared by the command groups (parsers of comma-separated lists, split, preprocessing,
precision and training options) and the split every training command makes of ``--data``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..base import PRECISIONS


def ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def strs(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", choices=("natural", "balanced"), default="natural",
                   help="natural: every class as collected; balanced: --per-class images from each class that has them")
    p.add_argument("--per-class", type=int, default=80, help="images per class in the balanced setting (default 80)")
    p.add_argument("--val", type=float, default=0.15, help="val fraction per class (default 0.15)")
    p.add_argument("--test", type=float, default=0.15, help="test fraction per class (default 0.15)")
    p.add_argument("--seed", type=int, default=0)


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    """The preprocessing options every trainer takes (saved with the model as preprocess.json)."""
    p.add_argument("--no-invert", action="store_true", help="keep the light background (default: invert to 0)")
    p.add_argument("--no-flatfield", action="store_true",
                   help="keep each crop's grey levels as imaged (default: divide out the lamp's gain and gradient, "
                        "estimated from the crop's border)")


def add_precision_arg(p: argparse.ArgumentParser) -> None:
    """``--precision`` for every command that runs a model (``--no-bf16`` is kept as its fp32 alias)."""
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of the model: auto (default: bf16 only where the hardware runs it natively, "
                        "i.e. CPUs with AMX and GPUs with bf16; elsewhere fp32, which is then much faster), fp32, bf16")
    p.add_argument("--no-bf16", dest="precision", action="store_const", const="fp32", help="same as --precision fp32")


def add_training_args(p: argparse.ArgumentParser) -> None:
    """Options every diffusion trainer shares (DDPM U-Net, RC-DiT): budget, optimiser, checkpoints, data split."""
    p.add_argument("--steps", type=int, help="budget in optimizer steps")
    p.add_argument("--minutes", type=float, help="budget in wall-clock minutes (default 60 if no --steps)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=500)
    add_precision_arg(p)
    add_preprocess_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_split_args(p)


def manifest_for(args, out_dir: Path) -> Path:
    """A split manifest for --data: kept as is if it already has a split, else made and saved in out_dir."""
    from ..workflows.pipeline import split  # noqa: PLC0415

    path = out_dir / "split.csv"
    m = split(args.data, path, setting=args.setting, per_class=args.per_class, val=args.val, test=args.test,
              seed=args.seed)
    print(f"split: {len(m)} images, {len(m.classes)} classes -> {path}")
    return path

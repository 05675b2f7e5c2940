"""Options shared by the command groups (parsers of comma-separated lists, split, preprocessing,
precision and training options), ``option`` (an option whose default is a settings dataclass's field) and
the split every training command makes of ``--data``.

Defaults live in the settings dataclasses (``diffprobe.config``, ``workflows.config``, ``app.config``), which
load no torch: ``option(p, "--lr", PretrainConfig)`` reads ``PretrainConfig.lr`` and writes it into the help
text where that says ``{default}``; the option remembers its source (``default_from``) so a test can hold
every option to its dataclass."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..base import PRECISIONS
from ..config import default_of, show_default
from ..config.data import SETTINGS, SplitConfig
from ..config.features import FeatureSpec
from ..config.pretrain import DEFAULT_MINUTES


def option(p: argparse.ArgumentParser, flag: str, source: type, name: str | None = None, *,
           help: str | None = None, **kw) -> argparse.Action:  # noqa: A002 - argparse's own name
    """``p.add_argument(flag, ...)`` with the default of field ``name`` of dataclass ``source`` (``name``: the
    flag without dashes, ``-`` read as ``_``). ``{default}`` in ``help`` is replaced by that default as the
    command line writes it (``1,10,25`` for a tuple)."""
    name = name or flag.lstrip("-").replace("-", "_")
    default = default_of(source, name)
    action = p.add_argument(flag, default=default, help=help.replace("{default}", show_default(default))
                            if help else help, **kw)
    action.default_from = (source, name)
    return action


def shown(source: type, name: str) -> str:
    """The default of ``source.name`` as the command line writes it: for the help of an option left unset
    (None) so that the library's own default applies."""
    return show_default(default_of(source, name))


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


def counts_or_all(text: str) -> tuple[int | None, ...]:
    """``1,5,all`` -> (1, 5, None)."""
    try:
        return tuple(None if x.strip() == "all" else int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers or 'all', got {text!r}") from None


def strs(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_split_args(p: argparse.ArgumentParser) -> None:
    option(p, "--setting", SplitConfig, choices=SETTINGS,
           help="natural: every class as collected; balanced: --per-class images from each class that has them")
    option(p, "--per-class", SplitConfig, type=int, help="images per class in the balanced setting (default {default})")
    option(p, "--val", SplitConfig, type=float, help="val fraction per class (default {default})")
    option(p, "--test", SplitConfig, type=float, help="test fraction per class (default {default})")
    option(p, "--seed", SplitConfig, type=int)


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    """The preprocessing options every trainer takes (saved with the model as preprocess.json)."""
    p.add_argument("--no-invert", action="store_true", help="keep the light background (default: invert to 0)")
    p.add_argument("--no-flatfield", action="store_true",
                   help="keep each crop's grey levels as imaged (default: divide out the lamp's gain and gradient, "
                        "estimated from the crop's border)")


def add_precision_arg(p: argparse.ArgumentParser, source: type = FeatureSpec) -> None:
    """``--precision`` for every command that runs a model (``--no-bf16`` is kept as its fp32 alias), its default
    that of ``source`` (the settings of what the command runs; a model's features by default)."""
    option(p, "--precision", source, choices=PRECISIONS,
           help="arithmetic of the model: {default} (default: bf16 where it is faster: GPUs with bf16, and CPUs "
                "with bf16 instructions where a few seconds' timing, cached per machine, finds it faster; "
                "elsewhere fp32; DIFFPROBE_AUTO_PRECISION=fp32|bf16 sets it without timing), fp32, bf16")
    p.add_argument("--no-bf16", dest="precision", action="store_const", const="fp32", help="same as --precision fp32")


def add_training_args(p: argparse.ArgumentParser, trainer: type) -> None:
    """Options every diffusion trainer shares (DDPM U-Net, RC-DiT): budget, optimiser, checkpoints, data split;
    defaults from the ``trainer``'s settings dataclass (``PretrainConfig``, ``RCDiTPretrainConfig``)."""
    p.add_argument("--steps", type=int, help="budget in optimizer steps")
    p.add_argument("--minutes", type=float,
                   help=f"budget in wall-clock minutes (default {show_default(DEFAULT_MINUTES)} if no --steps)")
    option(p, "--batch-size", trainer, type=int)
    option(p, "--lr", trainer, type=float)
    option(p, "--warmup-steps", trainer, type=int)
    option(p, "--checkpoint-every", trainer, type=int)
    add_precision_arg(p, trainer)
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

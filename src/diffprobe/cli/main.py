"""The ``diffprobe`` parser (one command group per module of ``diffprobe.cli``) and its entry point."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..base import DiffprobeError
from . import app, compare, datasets, field_use, pipeline, zeroshot

DESCRIPTION = "The ``diffprobe`` command line: one subcommand per stage, each a thin call into the library or a workflow."

# The command groups, in the order their commands are listed: each module has ``add_commands(subparsers)``.
COMMAND_GROUPS = (pipeline, compare, zeroshot, field_use, app, datasets)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffprobe", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"diffprobe {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return p


# `diffprobe pretrain --backbone X ...` is the same as the backbone's own training command.
BACKBONE_COMMANDS = {"rcdit": ["rcdit-pretrain"], **{m: ["baseline", "--method", m]
                                                     for m in ("supervised", "simclr", "dino", "mae")}}


def _route_backbone(argv: list[str]) -> list[str]:
    if not argv or argv[0] != "pretrain":
        return argv
    rest = list(argv[1:])
    for i, a in enumerate(rest):
        if a == "--backbone" or a.startswith("--backbone="):
            value = a.split("=", 1)[1] if "=" in a else (rest[i + 1] if i + 1 < len(rest) else "")
            del rest[i : i + (1 if "=" in a else 2)]
            if value == "ddpm":
                return ["pretrain", *rest]
            if value not in BACKBONE_COMMANDS:
                raise SystemExit(f"diffprobe pretrain: unknown --backbone {value!r}; choose one of "
                                 f"ddpm, {', '.join(BACKBONE_COMMANDS)}")
            return [*BACKBONE_COMMANDS[value], *rest]
    return argv


# Commands that split their work (images, or the probe's pairs) across the processes of `torchrun` /
# `accelerate launch`.
DATA_PARALLEL = ("pretrain", "rcdit-pretrain", "baseline", "features", "probe", "predict")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(datasets.route_fetch_shorthand(_route_backbone(argv)))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0:
        # Launched by torchrun / accelerate launch: the other commands are cheap and run on the main process
        # only; in the data-parallel ones, only the main process reports.
        if args.command not in DATA_PARALLEL:
            return 0
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if getattr(args, "precision", None):
        from ..utils import describe_precision  # noqa: PLC0415 - loads torch, which --help does not need

        print(f"precision: {describe_precision(args.precision)}")
    try:
        args.fn(args)
    except DiffprobeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run again with --resume where the command supports it", file=sys.stderr)
        return 130
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Leave the process group before the interpreter exits, as PyTorch asks: a rank whose gloo threads are still
    running at exit can abort ("terminate called without an active exception") after its work is done."""
    import torch.distributed as dist  # noqa: PLC0415 - only under a launcher; --help does not load torch

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

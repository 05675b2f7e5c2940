"""The ``diffprobe`` command line: the application's thin top.

One module per command group, each parsing its options, calling ``diffprobe.workflows`` or the
library, and printing where the results went:

    pipeline   split, summary, synth, pretrain, features, probe, fuse, study, cluster, demo
    compare    baseline, compare
    zeroshot   rcdit-pretrain, zeroshot
    field_use  evaluate, shift, predict, adapt, calibrate, ensemble, export
    datasets   data (list, fetch, verify, checksums)

``args`` holds the options they share; ``main`` builds the parser and runs a command.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]

"""One source for every default: the settings dataclasses (``diffprobe.config``, ``workflows.config``,
``app.config``). Every option of every command takes its default from one of their fields, and the functions
of the data layer (which sits above them) take theirs from ``config.data``."""

from __future__ import annotations

import argparse
import inspect

import pytest

from diffprobe.cli import build_parser
from diffprobe.config import default_of, show_default
from diffprobe.config.data import SplitConfig, SynthConfig

# Options whose default belongs to the command line alone (no library setting behind them).
CLI_ONLY = {
    ("pretrain", "--backbone"): "routes to another trainer's command ('ddpm': this one)",
    ("study", "--redo"): "stages to run again, none unless named",
}
NO_DEFAULT_ACTIONS = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction,
                      argparse._StoreConstAction, argparse._StoreTrueAction, argparse._StoreFalseAction)


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(command words, parser) of the top parser and every (sub)command, as ``diffprobe.cli`` builds them."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*prefix, name))


def options():
    """(command, flag, action) of every option of every command."""
    for words, parser in commands(build_parser()):
        for action in parser._actions:
            if action.option_strings and not isinstance(action, NO_DEFAULT_ACTIONS):
                yield " ".join(words), action.option_strings[-1], action


def test_the_walk_sees_every_command():
    names = {c for c, _, _ in options()}
    assert {"split", "pretrain", "features", "probe", "fuse", "cluster", "demo", "synth", "baseline", "compare",
            "rcdit-pretrain", "zeroshot", "evaluate", "shift", "predict", "adapt", "calibrate", "app",
            "app init"} <= names


def test_every_option_default_is_its_settings_field():
    sourced = 0
    for command, flag, action in options():
        source = getattr(action, "default_from", None)
        if source is None:
            # No dataclass behind it: the option is unset by default (the library's default applies) or the
            # command line's own.
            assert action.default is None or (command, flag) in CLI_ONLY, (command, flag, action.default)
            continue
        cls, name = source
        assert action.default == default_of(cls, name), (command, flag)
        assert type(action.default) is type(default_of(cls, name)), (command, flag)
        if action.choices is not None:
            assert action.default in action.choices, (command, flag)
        sourced += 1
    assert sourced > 80


def test_help_texts_show_the_settings_defaults():
    for command, flag, action in options():
        assert "{default}" not in (action.help or ""), (command, flag)
    by_flag = {(c, f): a for c, f, a in options()}
    from diffprobe.config.probe import GridProbeConfig
    from diffprobe.config.backbones import ViTConfig

    # Options left unset (None) so that the library's default applies still name that default.
    assert f"default {show_default(GridProbeConfig.epochs)})" in by_flag["probe", "--epochs"].help
    assert "default 1e-5,1e-4,1e-3)" in by_flag["probe", "--weight-decays"].help
    assert f"default {ViTConfig.embed_dim})" in by_flag["compare", "--vit-dim"].help
    assert by_flag["probe", "--max-gb"].help.endswith("(default 4)")


def test_a_new_default_reaches_the_command_line(monkeypatch):
    """The parser reads the dataclass when it is built: no copy of the value is left in the CLI."""
    import dataclasses

    from diffprobe.config.pretrain import PretrainConfig

    field = next(f for f in dataclasses.fields(PretrainConfig) if f.name == "lr")
    monkeypatch.setattr(field, "default", 1e-3)
    assert build_parser().parse_args(["pretrain", "--data", "d", "--out", "o"]).lr == 1e-3


def test_the_command_line_reads_the_data_settings_without_loading_numpy():
    """The data layer's settings (its functions' defaults) sit in ``config.data``, where the parser reads them
    cheaply."""
    import subprocess
    import sys

    code = ("import sys; from diffprobe.cli import build_parser; build_parser(); "
            "import diffprobe.config.data; "
            "print(sorted(m for m in ('numpy', 'torch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("value, shown", [((1e-5, 1e-4, 1e-3), "1e-5,1e-4,1e-3"), (0.03, "0.03"), (4.0, "4"),
                                          (0.15, "0.15"), (2e-4, "2e-4"), ((1, 10, 25), "1,10,25"), ("avg", "avg")])
def test_defaults_are_shown_as_typed_on_the_command_line(value, shown):
    assert show_default(value) == shown

"""The architecture holds: the import-linter contracts of pyproject.toml (two layers, the library in data-flow
order, no import loops, the command line and the web app through the seam) pass on the code under test, and the CLI's parser needs no torch."""

import os
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

import diffprobe

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(capsys):
    # grimp finds 'diffprobe' where this process imports it from, so the code checked is the code tested.
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "5 kept, 0 broken" in out, out


def test_the_cli_parser_loads_without_torch():
    """'diffprobe --help' answers at once: building the parser imports neither torch nor numpy."""
    src = str(Path(diffprobe.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = ("import sys; from diffprobe.cli import build_parser; build_parser(); "
            "print(sorted({'torch', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"


def test_every_help_and_the_settings_load_without_torch():
    """'diffprobe --help' and 'diffprobe COMMAND --help' of every command (their defaults read from the settings
    dataclasses), and the settings modules themselves, import neither torch nor numpy."""
    src = str(Path(diffprobe.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = """
import argparse, contextlib, io, sys
from diffprobe.cli import build_parser, main

def commands(p, prefix=()):
    yield prefix
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from commands(sub, (*prefix, name))

helps = 0
for words in commands(build_parser()):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([*words, "--help"])
        except SystemExit as e:
            assert e.code == 0, words
    assert "usage: diffprobe" in out.getvalue(), words
    helps += 1
import diffprobe.config.backbones, diffprobe.config.data, diffprobe.config.evaluate, diffprobe.config.features
import diffprobe.config.pretrain, diffprobe.config.probe, diffprobe.workflows.config, diffprobe.app.config
print(helps, sorted({'torch', 'numpy'} & set(sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    helps, loaded = out.strip().split(" ", 1)
    assert int(helps) > 20 and loaded == "[]"

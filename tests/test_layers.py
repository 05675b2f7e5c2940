"""The architecture holds: the import-linter contracts of pyproject.toml (two layers, the library in data-flow
order, no import loops) pass on the code under test, and the CLI's parser needs no torch."""

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
    assert "3 kept, 0 broken" in out, out


def test_the_cli_parser_loads_without_torch():
    """'diffprobe --help' answers at once: building the parser imports neither torch nor numpy."""
    src = str(Path(diffprobe.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = ("import sys; from diffprobe.cli import build_parser; build_parser(); "
            "print(sorted({'torch', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "[]"

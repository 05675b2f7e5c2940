"""The architecture holds: the import-linter contracts of pyproject.toml (two layers, the library in data-flow
order, no import loops) pass on the code under test."""

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(capsys):
    # grimp finds 'diffprobe' where this process imports it from, so the code checked is the code tested.
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 kept, 0 broken" in out, out

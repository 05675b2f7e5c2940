"""The package as users install it: a wheel built from this tree holds every module and the command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_module_and_runs_the_cli(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("diffprobe-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "diffprobe").rglob("*.py")}
    assert source <= names, f"modules missing from the wheel: {sorted(source - names)[:5]}"
    assert "diffprobe/data/checksums/ndsb.sha256.gz" in names  # what 'diffprobe data verify' checks against
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "diffprobe = diffprobe.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
    # The wheel alone (a pure-Python zip on sys.path, not this source tree) answers --version and --help.
    code = (f"import sys; sys.path.insert(0, {str(wheel)!r}); import diffprobe.cli as c; "
            f"assert c.__file__.startswith({str(wheel)!r}), c.__file__; sys.exit(c.main(['--help']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "pretrain" in out.stdout and "predict" in out.stdout


def _requirements():
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def _exact(lines):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    reqs = [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]
    return {canonicalize_name(r.name): str(r.specifier).removeprefix("==") for r in reqs}


def test_lowest_constraints_are_the_lower_bounds_of_pyproject():
    """.ci/lowest_constraints.py: every dependency and test extra at its '>=' bound; torch, torchvision pinned."""
    from packaging.utils import canonicalize_name

    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "lowest_constraints.py")], capture_output=True,
                         text=True, check=True).stdout
    lowest = _exact(out.splitlines())
    pins = _exact((ROOT / "constraints.txt").read_text().splitlines())
    reqs = _requirements()
    assert set(lowest) == {canonicalize_name(r.name) for r in reqs}
    for req in reqs:
        name = canonicalize_name(req.name)
        want = pins[name] if name in ("torch", "torchvision") else next(
            s.version for s in req.specifier if s.operator == ">=")
        assert lowest[name] == want, (name, lowest[name], want)


def test_constraints_pins_lie_inside_pyproject_ranges():
    from packaging.utils import canonicalize_name

    pins = _exact((ROOT / "constraints.txt").read_text().splitlines())
    for req in _requirements():
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name}: not pinned in constraints.txt"
        assert req.specifier.contains(pin, prereleases=True), f"constraints.txt's {req.name}=={pin} is outside {req}"

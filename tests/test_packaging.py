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

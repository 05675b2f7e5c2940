"""Hard-link installed distributions (and everything they require) from one venv into another.

The lowest-versions run (.ci/run) needs torch and torchvision at constraints.txt's versions, which the
main venv already holds: torch with its CUDA libraries is ~4 GiB unpacked, and a second `pip install`
of it costs minutes on CI's 2 cores. Linking the installed files (with their .dist-info, so pip sees
them as installed and leaves them alone) takes seconds and no space. pip never writes into an installed
file (it uninstalls by moving files away and installs new files), so the source venv is not changed by
anything done in the target.

Usage: python .ci/link_packages.py SOURCE_SITE_PACKAGES TARGET_SITE_PACKAGES NAME [NAME ...]
Run it with the source venv's python (its importlib.metadata reads the requirements).
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(names: list[str], path: list[str]) -> list[metadata.Distribution]:
    """The distributions named and all they require, extras included (torch needs cuda-toolkit[cufile,...]),
    with the markers evaluated here, as installed on `path`."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(n), "") for n in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in done:
            continue
        done.add((name, extra))
        if name not in found:
            found[name] = next(iter(metadata.distributions(name=name, path=path)), None)
            if found[name] is None:
                raise SystemExit(f"{name} is not installed in {path[0]}")
        for line in found[name].requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(canonicalize_name(req.name), e) for e in ("", *req.extras)]
    return list(found.values())


def link_tree(dist: metadata.Distribution, source: Path, target: Path) -> int:
    n = 0
    for file in dist.files or []:
        src = source / file
        if not src.is_file() or not src.resolve().is_relative_to(source.resolve()):
            continue  # console scripts in bin/ and the like: not needed to import the package
        dst = target / file
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            dst.unlink()
        try:
            os.link(src, dst)
        except OSError:  # another file system: copy instead
            shutil.copy2(src, dst)
        n += 1
    return n


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    source, target, names = Path(argv[0]), Path(argv[1]), argv[2:]
    dists = closure(names, [str(source)])
    n = sum(link_tree(d, source, target) for d in dists)
    print(f"linked {len(dists)} distributions ({n} files) from {source} into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

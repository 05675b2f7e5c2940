"""Small shared helpers: seeding, device choice, atomic writes, hashing, JSON."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch


class DiffprobeError(Exception):
    """An error a user can fix: the message names the file and the fix."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on both CPU (AMX-BF16) and CUDA; master weights stay fp32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def code_version() -> str | None:
    """The git commit of diffprobe's own source (``+dirty`` with uncommitted changes), or None outside git."""
    src = Path(__file__).resolve().parent
    try:  # a copy installed inside some other repository (e.g. a venv in it) is not that repository's code
        subprocess.run(["git", "-C", str(src), "ls-files", "--error-unmatch", Path(__file__).name],
                       capture_output=True, check=True)
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("+dirty" if dirty else "")


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from arbitrary parts, identical across runs and machines."""
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DiffprobeError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DiffprobeError(f"{path}: not valid JSON ({e}); the file is damaged, re-create it") from None


def atomic_dir(final: str | Path):
    """Context manager: build a directory under a temporary name, rename it into place on success."""
    return _AtomicDir(Path(final))


class _AtomicDir:
    def __init__(self, final: Path):
        self.final = final
        self.tmp = final.with_name(f".{final.name}.partial")

    def __enter__(self) -> Path:
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = self.final.with_name(f".{self.final.name}.old")
        if self.final.exists():
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        shutil.rmtree(old, ignore_errors=True)
        return False

"""Small shared helpers: seeding, device choice, atomic writes, hashing, JSON."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import PRECISIONS, DiffprobeError, legacy_precision  # noqa: F401 - defined without torch, re-exported

DATA_ENV = "DIFFPROBE_DATA"  # the folder that holds a user's datasets (e.g. $DIFFPROBE_DATA/ndsb/images)


def expand_data_path(text: str, where: str | Path) -> Path:
    """A path as written in a config or a manifest sidecar, with ``$DIFFPROBE_DATA`` (and any other
    environment variable) expanded; a clear error naming ``where`` when the variable is unset."""
    text = str(text)
    if f"${DATA_ENV}" in text or f"${{{DATA_ENV}}}" in text:
        if not os.environ.get(DATA_ENV):
            raise DiffprobeError(f"{where}: the data location is {text!r}, but {DATA_ENV} is not set; "
                                 f"export {DATA_ENV}=/folder/holding/your/datasets (NDSB in ndsb/images)")
    return Path(os.path.expanduser(os.path.expandvars(text)))


def portable_data_path(path: str | Path) -> str | None:
    """``$DIFFPROBE_DATA/...`` for a path inside that folder (so a file naming it works on any machine),
    else None."""
    base = os.environ.get(DATA_ENV)
    if not base:
        return None
    try:
        rel = Path(path).resolve().relative_to(Path(base).resolve())
    except ValueError:
        return None
    return f"${DATA_ENV}/{rel.as_posix()}"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@functools.cache  # asked on every autocast (each minibatch of a probe); the CPU does not change
def cpu_features() -> dict[str, bool]:
    """The CPU's matrix and vector extensions as PyTorch sees them (its own dispatch checks), and whether its
    convolution and matmul library (oneDNN) may use AMX: ``ONEDNN_MAX_CPU_ISA`` can hold it below what the CPU
    has (measured on an AMX Xeon: at AVX2, bf16 convolutions run 28x slower than fp32; at AVX512_CORE_BF16,
    0.8x the fp32 speed, as on a CPU with AVX512_BF16 and no AMX)."""
    cpu = torch.backends.cpu
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return {"capability": cpu.get_cpu_capability(),
            "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
            "avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
            "onednn_amx": isa in ("", "ALL", "DEFAULT") or "AMX" in isa}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 matmuls natively, i.e. faster than fp32.

    CUDA: the GPU says so (Ampere and later). CPU: only with AMX tiles that oneDNN may use
    (``cpu_features``). AVX512_BF16 alone is not
    enough (measured: an Intel CPU with it but no AMX trained the demo U-Net at 18 images/s in bf16
    against 22 in fp32), and without either bf16 is emulated, about 10x slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    f = cpu_features()
    return device.type == "cpu" and f["amx"] and f["onednn_amx"]


def resolve_precision(precision: str = "auto", device: torch.device | None = None) -> str:
    """The one place that decides the numeric precision: ``fp32`` or ``bf16`` for ``precision``
    (``auto``: bf16 where ``device`` runs it natively, else fp32)."""
    if precision not in PRECISIONS:
        raise DiffprobeError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device or default_device()) else "fp32"


def describe_precision(precision: str = "auto", device: torch.device | None = None) -> str:
    """One line for the user: the precision used and why, e.g. ``fp32 (auto: no native bf16 on this AVX2 CPU)``."""
    device = device or default_device()
    used = resolve_precision(precision, device)
    if precision != "auto":
        return f"{used} (asked for)"
    if device.type == "cuda":
        return f"{used} (auto: {torch.cuda.get_device_name(device)})"
    f = cpu_features()
    why = ("AMX" if f["onednn_amx"] else "AMX held back by ONEDNN_MAX_CPU_ISA") if f["amx"] else "no native bf16"
    return f"{used} (auto: {why} on this {f['capability']} CPU)"


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast where the resolved precision is bf16 (master weights stay fp32), else a no-op."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=resolve_precision(precision, device) == "bf16")


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

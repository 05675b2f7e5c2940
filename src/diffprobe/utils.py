"""Small shared helpers: seeding, device choice, atomic writes, hashing, JSON and CSV rows."""

from __future__ import annotations

import csv
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


AUTO_PRECISION_ENV = "DIFFPROBE_AUTO_PRECISION"  # fp32 | bf16: what auto picks on this machine, unmeasured
CACHE_ENV = "DIFFPROBE_CACHE"  # where measurements are cached (default ~/.cache/diffprobe)
BF16_MARGIN = 0.9  # bf16 must take under 0.9x fp32's time: within 10% fp32 wins, being the more exact


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "diffprobe"
                ).expanduser()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    import platform  # noqa: PLC0415

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_precisions(repeats: int = 5) -> dict[str, float]:
    """Seconds per forward of a small convolution stack (the U-Net's and the CNNs' kind of work) in fp32 and under
    bf16 autocast on the CPU: the best of ``repeats`` after a warm-up, {"fp32": s, "bf16": s}."""
    import time  # noqa: PLC0415

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(64, 128, 3, padding=1), torch.nn.SiLU(),
                              torch.nn.Conv2d(128, 128, 3, padding=1), torch.nn.SiLU()).eval()
    x = torch.randn(32, 64, 32, 32, generator=gen)
    out = {}
    with torch.no_grad():
        for name in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                net(x)
                best = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    net(x)
                    best = min(best, time.perf_counter() - t0)
            out[name] = best
    return out


@functools.cache  # measured once per process at most, and then cached on disk per machine
def measured_cpu_precision() -> tuple[str, str]:
    """(precision, why) that ``auto`` uses on this CPU, decided by timing both (``time_precisions``, a few seconds,
    once per CPU model, torch version, oneDNN ISA limit and thread count, cached in ``cache_dir()/precision.json``),
    or set by ``DIFFPROBE_AUTO_PRECISION``."""
    forced = os.environ.get(AUTO_PRECISION_ENV, "").strip()
    if forced:
        if forced not in ("fp32", "bf16"):
            raise DiffprobeError(f"{AUTO_PRECISION_ENV}={forced!r}: set it to fp32 or bf16, or unset it to measure")
        return forced, f"set by {AUTO_PRECISION_ENV}"
    key = "|".join([cpu_name(), torch.__version__, os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
                    str(torch.get_num_threads())])
    path = cache_dir() / "precision.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    cache = cache if isinstance(cache, dict) else {}
    times = cache.get(key)
    if not (isinstance(times, dict) and {"fp32", "bf16"} <= set(times)):
        times = time_precisions()
        try:  # a read-only home must not stop a run: the measurement is then repeated next time
            write_json(path, {**cache, key: times})
        except OSError:
            pass
    ratio = times["bf16"] / times["fp32"]
    used = "bf16" if ratio < BF16_MARGIN else "fp32"
    return used, f"bf16 measured at {1 / ratio:.2f}x the speed of fp32 on this CPU"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 faster than fp32.

    CUDA: the GPU says so (Ampere and later). CPU: measured (``measured_cpu_precision``) where the CPU has bf16
    instructions (AMX or AVX512_BF16), since the same flag means 1.8x on one CPU and 0.8x on another (an AMD EPYC
    with AVX512_BF16 and no AMX predicted 1.8x faster in bf16, an Intel CPU with that flag 0.8x). Without either,
    bf16 is emulated, about 10x slower than fp32, and nothing is measured.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    f = cpu_features()
    if device.type != "cpu" or not (f["amx"] or f["avx512_bf16"]):
        return False
    return measured_cpu_precision()[0] == "bf16"


def resolve_precision(precision: str = "auto", device: torch.device | None = None) -> str:
    """The one place that decides the numeric precision: ``fp32`` or ``bf16`` for ``precision``
    (``auto``: bf16 where ``device`` runs it faster than fp32, else fp32)."""
    if precision not in PRECISIONS:
        raise DiffprobeError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device or default_device()) else "fp32"


def describe_precision(precision: str = "auto", device: torch.device | None = None) -> str:
    """One line for the user: the precision used and why, e.g. ``fp32 (auto: no bf16 instructions on this AVX2
    CPU)`` or ``bf16 (auto: bf16 measured at 1.80x the speed of fp32 on this CPU)``."""
    device = device or default_device()
    used = resolve_precision(precision, device)
    if precision != "auto":
        return f"{used} (asked for)"
    if device.type == "cuda":
        return f"{used} (auto: {torch.cuda.get_device_name(device)})"
    f = cpu_features()
    if not (f["amx"] or f["avx512_bf16"]):
        return f"{used} (auto: no bf16 instructions on this {f['capability']} CPU)"
    return f"{used} (auto: {measured_cpu_precision()[1]})"


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


def write_rows_csv(rows: list[dict], path: str | Path) -> Path:
    """Write dict rows as CSV (columns in first-seen order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
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

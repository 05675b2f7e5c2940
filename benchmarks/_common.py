"""The benchmark scripts' helpers (``diffprobe.workflows.bench``, shared with ``experiments/``), writing into
``benchmarks/results/``."""

from __future__ import annotations

from pathlib import Path

from diffprobe.workflows.bench import MemorySampler, machine, peak_rss_mb, run_isolated, write_result

__all__ = ["RESULTS", "MemorySampler", "machine", "peak_rss_mb", "run_isolated", "write"]

RESULTS = Path(__file__).resolve().parent / "results"


def write(name: str, payload: dict, table: list[str]) -> Path:
    """``benchmarks/results/<name>.json`` and ``.md``, with the machine described."""
    return write_result(RESULTS, name, payload, table)

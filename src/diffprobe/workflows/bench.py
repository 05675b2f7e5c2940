"""Helpers shared by the speed benchmarks (``benchmarks/``) and the finished accuracy experiments
(``experiments/<name>/``): machine description, JSON + Markdown output, peak memory, the recipe's head inputs.

Not part of the product's API and never read by the tests; it lives in the package only so that a script in
either folder imports it the same way (``from diffprobe.workflows.bench import ...``). Scripts run from the
repository root, as their docstrings say.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..utils import cpu_features, resolve_precision

SHIPPED_MODEL = Path("models") / "ndsb"  # relative to the repository root, where the scripts run


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    # The instruction set decides what precision=auto runs (bf16 only with AMX or a bf16 GPU): name both.
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_features": cpu_features(), "precision_auto": resolve_precision("auto"),
            "torch": torch.__version__, "cuda": torch.cuda.is_available(), "python": platform.python_version()}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemorySampler:
    """Peak anonymous memory (RssAnon: what the process really holds) and peak file-backed resident pages
    (RssFile: memory-mapped data the kernel can drop and re-read), sampled every 0.1 s. Peak RSS counts
    both, so it grows with every mapped page touched even when nothing is held."""

    def __init__(self):
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for line in open("/proc/self/status"):
                key = line.split(":")[0]
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], int(line.split()[1]) // 1024)
            time.sleep(0.1)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_anon_mb": self.peak["RssAnon"], "peak_file_mb": self.peak["RssFile"]}


def run_isolated(script: str, *args: str) -> dict:
    """Run one variant in a fresh process so its peak memory is its own; it prints one JSON line."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_result(results: Path, name: str, payload: dict, table: list[str]) -> Path:
    """``results/<name>.json`` (the payload with the machine described) and ``results/<name>.md`` (the table)."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    (results / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (results / f"{name}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(f"\nwrote {results / name}.json and .md")
    return results / f"{name}.json"


def results_dir(script: str) -> Path:
    """Where a script's results are kept: ``results/`` beside it."""
    return Path(script).resolve().parent / "results"


def writer(script: str) -> Callable[[str, dict, list[str]], Path]:
    """``write(name, payload, table)`` into ``results_dir(script)``."""
    return lambda name, payload, table: write_result(results_dir(script), name, payload, table)


def head_inputs(store, results_path: str, k: int, parts=("train", "val", "test")):
    """The fused head's inputs of a probed store: the top-k pairs (ranked by the probe's val accuracy) and the
    object metadata, concatenated per part. Returns (pairs, {part: (N, D) float32}, {part: (N,) labels})."""
    import numpy as np  # noqa: PLC0415

    from ..probe.fusion import rank_pairs  # noqa: PLC0415
    from ..utils import read_json  # noqa: PLC0415

    m = {s: store.splits == s for s in parts}
    pairs = [p for p in rank_pairs(read_json(results_path)) if p in set(store.pairs)][:k]
    x = {s: np.concatenate([np.asarray(store.get(b, t)[m[s]], np.float32) for b, t in pairs]
                           + [store.metadata[m[s]]], axis=1) for s in m}
    return pairs, x, {s: store.labels[m[s]] for s in m}


def shifted_accuracy(shift: dict) -> dict:
    """``{shift: {level, accuracy, macro_f1}}`` of a ``diffprobe shift`` run's ``shift.json`` (one severity each)."""
    return {name: {"level": shift["levels"][name][str(r["severity"])], "accuracy": r["accuracy"],
                   "macro_f1": r["macro_f1"]} for name, rs in shift["shifts"].items() for r in rs}


SPC_COLUMNS = ("spc", "spc_scale")  # zero-shot as measured, and with --size-scale auto


def zero_shot_metrics(runs: Path, folders: dict[str, str]) -> dict:
    """Accuracy and macro F1 of the ``diffprobe evaluate --class-map`` runs ``{column: folder}`` that exist."""
    return {key: {m: json.loads((runs / folder / "metrics.json").read_text())[m] for m in ("accuracy", "macro_f1")}
            for key, folder in folders.items() if (runs / folder / "metrics.json").is_file()}


def zero_shot_cells(row: dict) -> list[str]:
    """The table cells "accuracy / macro F1" of a row's ``spc_zero_shot``, one per ``SPC_COLUMNS``."""
    z = row["spc_zero_shot"]
    return [f"{z[k]['accuracy']:.1%} / {z[k]['macro_f1']:.3f}" if k in z else "–" for k in SPC_COLUMNS]


def shipped_head_probe(seed: int = 0, model: str | Path = SHIPPED_MODEL):
    """An ``MLPProbe`` with the settings val chose for the shipped model's head (``head_config`` of
    ``models/ndsb/bundle.json``: width, dropout, weight decay), so a script fits heads as the recipe does."""
    from ..probe.mlp import MLPProbe  # noqa: PLC0415

    cfg = json.loads((Path(model) / "bundle.json").read_text())["head_config"]
    return MLPProbe(hidden=(cfg["hidden"],), dropout=(cfg["dropout"],), weight_decays=(cfg["weight_decay"],),
                    seed=seed)

"""The probe stage on disk: a linear probe on every (block, timestep) pair of a feature store (the computation
is ``probe.run``'s), the best pair chosen on val, test reported once; writes results.json, timing.json,
report.md, heatmap.png, confusion.png and a classifier bundle (``save_store_bundle``, fusion's too).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from ..config.probe import ProbeRunConfig
from ..features.store import FeatureStore
from ..probe.linear import GridProbe
from ..probe.bundle import ClassifierBundle
from ..probe.run import choose_pair, probe_pairs, store_bundle_meta
from ..report.plots import confusion_plot, grid_heatmap
from ..report.tables import probe_report
from ..utils import write_json


def run_probe(store: FeatureStore | str | Path, out_dir: str | Path, *, probe: GridProbe | None = None,
              bundle: bool = True, title: str = "", max_gb: float = ProbeRunConfig.max_gb) -> dict:
    """Probe every pair of ``store``; write the artifacts to ``out_dir``; return the results dict.

    Pairs are read from the memory-mapped store and probed in chunks of at most ``max_gb`` of features, so a
    store larger than RAM is probed piece by piece (a store that fits is probed in one batched pass). Under
    ``torchrun`` / ``accelerate launch`` each process probes its share of every chunk's pairs and the main
    process gathers the heads and writes the artifacts.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    out = Path(out_dir)
    state = PartialState(cpu=not torch.cuda.is_available())
    world, rank = state.num_processes, state.process_index
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    probe = probe or GridProbe()
    t0 = time.time()
    done = probe_pairs(store, probe, max_gb, rank=rank, world=world)  # (pair index, grid row, head) of this process
    if world > 1:
        done = gather_object(done)  # every process's pairs
        if not state.is_main_process:
            state.wait_for_everyone()  # leave with the main process: a rank exiting early can abort gloo
            return {}
    try:
        fit_s = time.time() - t0
        chosen = choose_pair(store, probe, done)
        results, best = chosen.results, chosen.results["best"]
        grid_heatmap(results["grid"], out / "heatmap.png", best=best,
                     title=title or "Linear-probe accuracy per (block, timestep)")
        confusion_plot(chosen.confusion, store.classes, out / "confusion.png",
                       title=f"Test confusion, {best['block']} t={best['timestep']}")
        if bundle:
            metrics = {k: best[k] for k in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy", "val_accuracy")}
            results["bundle"] = str(save_store_bundle(out / "bundle", store, chosen.head,
                                                      [(best["block"], best["timestep"])], chosen.val_logits,
                                                      chosen.temperature, metrics))
        write_json(out / "results.json", results)
        # Timings vary run to run; kept apart so results.json is identical for the same command and seed.
        write_json(out / "timing.json", {"probe_fit_seconds": round(fit_s, 2)})
        (out / "report.md").write_text(probe_report(results, fit_s))
        return results
    finally:
        if world > 1:
            state.wait_for_everyone()  # also when writing failed: the other processes are waiting here


def save_store_bundle(path: Path, store: FeatureStore, head, pairs: list[tuple[str, int]], val_logits: np.ndarray,
                      temperature: float, metrics: dict, metadata: list[str] = (),
                      train_parts: tuple[str, ...] = ("train",)) -> Path:
    """Write a bundle of ``head`` fitted on ``store``'s ``pairs`` (``probe.run.store_bundle_meta``) with the store's
    model."""
    return ClassifierBundle.save(path, model_dir=store.meta["model_dir"], head=head,
                                 meta=store_bundle_meta(store, pairs, val_logits, temperature, metrics, metadata,
                                                        train_parts))

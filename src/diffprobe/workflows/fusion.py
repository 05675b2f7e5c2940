"""Fusion on disk: the probe's ``results.json`` read, the top pairs fused (the computation is
``probe.fusion.fit_fusion``'s), ``fusion.json``, ``fusion.md``, ``timing.json`` and the chosen head's classifier
bundle written.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config.probe import FusionConfig
from ..features.store import FeatureStore
from ..probe.fusion import fit_fusion
from ..probe.linear import GridProbe
from ..probe.mlp import MLPProbe
from ..report.tables import fusion_report
from ..utils import read_json, write_json
from .probe import save_store_bundle


def fuse_pairs(store: FeatureStore | str | Path, results: dict | str | Path, out_dir: str | Path, *,
               ks: tuple[int, ...] = FusionConfig.ks, probe: GridProbe | None = None,
               head: str = FusionConfig.head, metadata: bool = FusionConfig.metadata, mlp: MLPProbe | None = None,
               metadata_weight: float = FusionConfig.metadata_weight, refit: bool = FusionConfig.refit,
               bundle: bool = True) -> dict:
    """``probe.fusion.fit_fusion`` on ``store`` and its probe ``results`` (``results.json`` or its dict): ``head``
    on the concatenated top-k pairs (and the object metadata when ``metadata``) for every k in ``ks``, k chosen
    on val. Writes ``fusion.json``, ``fusion.md`` and (``bundle``, for a store that names its model) a classifier
    ``bundle/`` of the chosen head to ``out_dir``; returns the same dict.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    results = results if isinstance(results, dict) else read_json(results)
    t0 = time.time()
    fused = fit_fusion(store, results, ks=ks, probe=probe, head=head, metadata=metadata, mlp=mlp,
                       metadata_weight=metadata_weight, refit=refit)
    fit_s = time.time() - t0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r, best = fused.results, fused.results["best"]
    if bundle and "model_dir" in store.meta:  # stores written by extract_features know their model
        scored = r.get("refit", best)
        metrics = {m: scored[m] for m in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy", "test_log_loss")}
        metrics["val_accuracy"] = best["val_accuracy"]
        r["bundle"] = str(save_store_bundle(out / "bundle", store, fused.head, fused.pairs, fused.val_logits,
                                            fused.temperature, metrics, r["metadata"], train_parts=fused.train_parts))
    write_json(out / "fusion.json", r)
    write_json(out / "timing.json", {"fusion_fit_seconds": round(fit_s, 2)})
    (out / "fusion.md").write_text(fusion_report(r))
    return r

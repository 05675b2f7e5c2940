"""The controlled comparison of the first paper: frozen DDPM features against supervised and
self-supervised baselines trained on the same data, with the same budget, probed the same way.

For every setting (``natural``: the long tail as collected; ``balanced``: ``per_class`` images
of every class that has them):

1. one split manifest (``pipeline.split``, one seed) shared by every method;
2. every method trained from scratch on its train part, for the same number of training
   images seen (``budget_images``); DDPM through ``pipeline.run_pretrain``, the baselines
   through ``pipeline.run_baseline``. A finished run is reused, never retrained: its
   folder is keyed by (method, config, images) and ``trained.json`` marks it complete;
3. the same feature extraction (``extract_features``: every block, average pooling; the DDPM at
   ``timesteps``, the baselines at timestep 0), the same batched linear probe (``workflows.probe.run_probe``:
   one probe per (block, timestep), chosen on val, test reported once) and k-means (k = number
   of classes) on the chosen pair's test features;
4. with ``fusion`` (a ``FusionConfig``), the classifier recipe's readout for every method alike: one head
   (the MLP by default) on its top-k pairs and the objects' size and shape measurements, k chosen on val
   (``workflows.fusion.fuse_pairs``, trained on train only), an extra row per method;
5. one table: top-1 accuracy, macro F1, balanced accuracy, macro F1 of the head / medium / tail
   classes, NMI, ARI, plus the supervised network's own head (end to end) as an extra row.

Head / medium / tail (``shots``, default (20, 100)): a class's number of *training* images
n: tail n < 20, medium 20 <= n <= 100, head n > 100 (the many / medium / few-shot split of
the long-tail literature). A group's score is the macro F1 over its classes (the mean of their
per-class test F1); an empty group is reported as missing. In the balanced setting every class
has the same count, so all classes fall in one group.

Writes to ``out``: ``<setting>/split.csv``, ``<setting>/<method>-<key>/{run,features,probe}``,
and ``compare.json``, ``compare.md``, ``compare.png``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..backbones.baselines import BaselineBackbone
from ..backbones.ddpm_unet import UNetConfig
from ..config.probe import FusionConfig
from ..data.dataset import ImageArray, load_split_images
from ..data.preprocess import Preprocess
from ..features.extract import FeatureSpec
from ..features.store import extract_features, images_hash
from ..pretrain.baselines import METHODS as BASELINE_METHODS
from ..pretrain.baselines import BaselineConfig, default_arch
from ..pretrain.ddpm import PretrainConfig
from ..features.store import FeatureStore
from ..probe.label_curve import label_curve
from ..probe.linear import GridProbe
from ..probe.metrics import classification_metrics, per_class_f1
from ..report.plots import compare_plot, curves_plots
from ..report.tables import compare_report, curves_report, readout_name
from ..utils import DiffprobeError, hash_json, read_json, write_json
from .config import METHODS, SETTINGS, CompareConfig
from .fusion import fuse_pairs
from .pipeline import run_baseline, run_cluster, run_pretrain, split
from .probe import run_probe

log = logging.getLogger(__name__)

DEFAULT_BUDGET = CompareConfig.budget_images
DEFAULT_SHOTS = CompareConfig.shots
MethodConfig = PretrainConfig | BaselineConfig


def default_configs(methods=METHODS, *, budget_images: int = DEFAULT_BUDGET,
                    image_size: int = CompareConfig.image_size, seed: int = CompareConfig.seed,
                    dino_arch: str | None = None, invert: bool = True) -> dict[str, MethodConfig]:
    """Each method's default config for a budget of ``budget_images`` training images seen.

    DDPM: the README's U-Net (64, 128, 128), batch 64, ``ceil(budget / 64)`` steps, warm-up over 5% of
    them as for the baselines (a fixed 200-step warm-up would fill a small budget). Baselines:
    ``BaselineConfig`` defaults (batch 128); DINO on a ResNet unless ``dino_arch="vit"``.
    """
    configs: dict[str, MethodConfig] = {}
    for m in methods:
        if m == "ddpm":
            steps = math.ceil(budget_images / 64)
            configs[m] = PretrainConfig(unet=UNetConfig(image_size=image_size), batch_size=64, steps=steps,
                                        warmup_steps=max(1, round(BaselineConfig.warmup_fraction * steps)),
                                        seed=seed, invert=invert)
        elif m in BASELINE_METHODS:
            configs[m] = BaselineConfig(method=m, arch=default_arch(m, image_size, dino_arch if m == "dino" else None),
                                        budget_images=budget_images, seed=seed, invert=invert)
        else:
            raise DiffprobeError(f"unknown method {m!r}; choose from {METHODS}")
    return configs


def images_seen(cfg: MethodConfig) -> int:
    return cfg.steps * cfg.batch_size


def at_budget(method: str, cfg: MethodConfig, budget_images: int) -> MethodConfig:
    """``cfg`` set to see ``budget_images`` training images (the DDPM's warm-up 5% of its steps, as
    ``default_configs``)."""
    if method != "ddpm":
        return replace(cfg, budget_images=budget_images)
    steps = math.ceil(budget_images / cfg.batch_size)
    return replace(cfg, steps=steps, warmup_steps=max(1, round(BaselineConfig.warmup_fraction * steps)))


def shot_groups(train_counts: np.ndarray, shots: tuple[int, int] = DEFAULT_SHOTS) -> dict[str, list[int]]:
    """Class indices per group by training count n (lo, hi = shots): head n > hi, medium lo <= n <= hi, tail n < lo."""
    lo, hi = shots
    return {"head": [c for c, n in enumerate(train_counts) if n > hi],
            "medium": [c for c, n in enumerate(train_counts) if lo <= n <= hi],
            "tail": [c for c, n in enumerate(train_counts) if n < lo]}


def group_f1(per_class_f1: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float | None]:
    """Macro F1 of each group's classes (None for an empty group)."""
    return {f"f1_{g}": (float(np.mean(per_class_f1[idx])) if idx else None) for g, idx in groups.items()}


def _train(method: str, cfg: MethodConfig, manifest: Path, run_dir: Path, progress: bool) -> Path:
    if method == "ddpm":
        return run_pretrain(manifest, run_dir, cfg, resume=True, progress=progress)
    return run_baseline(manifest, run_dir, cfg, resume=True, progress=progress)


def _check_budgets(configs: dict[str, MethodConfig], budget_images: int) -> None:
    """Every method sees the budget, to within one of its batches."""
    for m, cfg in configs.items():
        if cfg.steps is None:
            raise DiffprobeError(f"{m}: give the budget in steps (images seen), not in minutes")
        seen = images_seen(cfg)
        if not budget_images <= seen < budget_images + cfg.batch_size:
            raise DiffprobeError(f"{m} is configured to see {seen} training images, not the shared budget of "
                                 f"{budget_images}; give every method the same budget")


def _end_to_end(run_dir: Path, images: ImageArray, groups: dict[str, list[int]]) -> dict:
    """The supervised network's own head on the test part."""
    x, y = images.part("test")
    pred = BaselineBackbone.load(run_dir).classify(x).argmax(1)
    return {**classification_metrics(y, pred),
            **group_f1(np.asarray(per_class_f1(y, pred, len(images.classes))), groups)}


def _fused_row(store: FeatureStore, results: dict, out: Path, fusion: FusionConfig, probe: GridProbe,
               classes: list[str], groups: dict[str, list[int]]) -> dict:
    """The recipe's readout of one method's features (trained on train, k chosen on val, test once)."""
    r = fuse_pairs(store, results, out, ks=fusion.ks, head=fusion.head, metadata=fusion.metadata,
                   metadata_weight=fusion.metadata_weight, refit=False, probe=probe, bundle=False)
    best = r["best"]
    class_f1 = np.array([r["per_class_test_f1"][c] for c in classes])
    return {"eval": readout_name(fusion.head, fusion.metadata), "accuracy": best["test_accuracy"],
            "macro_f1": best["test_macro_f1"],
            "balanced_accuracy": best["test_balanced_accuracy"], "log_loss": best["test_log_loss"],
            **group_f1(class_f1, groups), "nmi": None, "ari": None, "block": f"top {best['k']}", "timestep": None,
            "val_accuracy": best["val_accuracy"], "fusion_dir": str(out)}


def compare(data: str | Path, out: str | Path, *, methods=CompareConfig.methods, settings=CompareConfig.settings,
            budget_images: int = DEFAULT_BUDGET, seed: int = CompareConfig.seed,
            image_size: int = CompareConfig.image_size, per_class: int = CompareConfig.per_class,
            val: float = CompareConfig.val, test: float = CompareConfig.test,
            configs: dict[str, MethodConfig] | None = None, dino_arch: str | None = None,
            timesteps: tuple[int, ...] | None = None, probe: GridProbe | None = None,
            shots: tuple[int, int] = DEFAULT_SHOTS, precision: str = CompareConfig.precision,
            fusion: FusionConfig | None = None, progress: bool = True) -> dict:
    """Run the comparison of ``methods`` in ``settings`` on ``data``; write and return ``compare.json``'s dict.

    ``configs`` replaces the default config of the methods it names (same budget required).
    ``precision``: of feature extraction (training precision is each config's own).
    ``timesteps``: the DDPM's feature timesteps (default ``FeatureSpec``'s). ``fusion``: also read every
    method's features the classifier recipe's way (an extra row each; None: the linear probe only). The returned
    dict lists
    under ``trained`` / ``reused`` which runs were trained by this call.
    """
    timesteps = tuple(timesteps or FeatureSpec().timesteps)
    methods, settings = tuple(methods), tuple(settings)
    unknown = [m for m in methods if m not in METHODS] + [s for s in settings if s not in SETTINGS]
    if unknown or not methods or not settings:
        raise DiffprobeError(f"unknown or missing methods / settings {unknown}; methods: {METHODS}, "
                             f"settings: {SETTINGS}")
    if not (isinstance(shots, (tuple, list)) and len(shots) == 2 and 0 < shots[0] <= shots[1]):
        raise DiffprobeError(f"shots must be two thresholds lo <= hi (tail < lo, head > hi), got {shots}")
    cfgs = {**default_configs(methods, budget_images=budget_images, image_size=image_size, seed=seed,
                              dino_arch=dino_arch), **{m: c for m, c in (configs or {}).items() if m in methods}}
    _check_budgets(cfgs, budget_images)
    preprocess = {m: Preprocess.for_training(c) for m, c in cfgs.items()}
    if len(set(preprocess.values())) != 1:
        raise DiffprobeError(f"the methods preprocess images differently ({preprocess}); a fair comparison needs "
                             f"one image size and inversion for all")
    pre = next(iter(preprocess.values()))
    probe = probe or GridProbe(seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows, trained, reused, split_info = [], [], [], {}
    for setting in settings:
        sdir = out / setting
        manifest = sdir / "split.csv"
        split_manifest = split(data, manifest, setting=setting, per_class=per_class, val=val, test=test, seed=seed)
        images = load_split_images(manifest, pre, report_dir=sdir, progress=progress)
        n_classes = len(images.classes)
        train_counts = np.bincount(images.labels[images.splits == "train"], minlength=n_classes)
        groups = shot_groups(train_counts, shots)
        split_info[setting] = {"manifest": str(manifest), "n_classes": n_classes,
                               "sizes": {s: int((images.splits == s).sum()) for s in ("train", "val", "test")},
                               "groups": {g: [images.classes[c] for c in idx] for g, idx in groups.items()},
                               "dropped_classes": split_manifest.info.get("dropped_classes", [])}
        data_key = images_hash(images)
        for method in methods:
            cfg = cfgs[method]
            inputs = {"method": method, "config": cfg.to_dict(), "images": data_key}
            mdir = sdir / f"{method}-{hash_json(inputs)[:10]}"
            run_dir = mdir / "run"
            if (mdir / "trained.json").is_file() and (run_dir / "summary.json").is_file():
                log.info("reusing the trained %s model in %s", method, run_dir)
                reused.append(f"{setting}/{method}")
            else:
                _train(method, cfg, manifest, run_dir, progress)
                write_json(mdir / "trained.json", inputs)
                trained.append(f"{setting}/{method}")
            summary = read_json(run_dir / "summary.json")
            spec = FeatureSpec(timesteps=timesteps if method == "ddpm" else (0,), seed=seed, precision=precision)
            store = extract_features(run_dir, images, spec, mdir / "features", progress=progress)
            res = run_probe(store, mdir / "probe", probe=probe, title=f"{method}, {setting}: linear-probe accuracy")
            km = run_cluster(store, mdir / "probe", results=res, seed=seed)
            best = res["best"]
            class_f1 = np.array([res["per_class_test_f1"][c] for c in images.classes])
            common = {"setting": setting, "method": method, "params": summary["params"],
                      "images_seen": summary["images_seen"], "train_seconds": round(summary["elapsed_s"], 1),
                      "images_per_s": round(summary["images_seen"] / max(1e-9, summary["elapsed_s"]), 1),
                      "device": summary.get("device", "cpu"), "run_dir": str(run_dir)}
            rows.append({**common, "eval": "linear probe", "accuracy": best["test_accuracy"],
                         "macro_f1": best["test_macro_f1"], "balanced_accuracy": best["test_balanced_accuracy"],
                         **group_f1(class_f1, groups), "nmi": km["nmi"], "ari": km["ari"],
                         "block": best["block"], "timestep": best["timestep"], "val_accuracy": best["val_accuracy"],
                         "probe_dir": str(mdir / "probe")})
            if fusion is not None:
                rows.append({**common, **_fused_row(store, res, mdir / "fusion", fusion, probe, images.classes,
                                                    groups)})
            if method == "supervised":
                rows.append({**common, "eval": "end to end", **_end_to_end(run_dir, images, groups),
                             "nmi": None, "ari": None, "block": "head", "timestep": None})
    result = {"budget_images": budget_images, "seed": seed, "image_size": pre.size, "methods": list(methods),
              "threads": torch.get_num_threads(),
              "settings": list(settings), "shots": list(shots), "splits": split_info,
              "configs": {m: c.to_dict() for m, c in cfgs.items()},
              "probe": {"epochs": probe.epochs, "lr": probe.lr, "weight_decays": list(probe.weight_decays),
                        "class_balanced": probe.class_balanced, "seed": probe.seed},
              "fusion": None if fusion is None else {"ks": list(fusion.ks), "head": fusion.head,
                                                     "metadata": fusion.metadata,
                                                     "metadata_weight": fusion.metadata_weight},
              "ddpm_timesteps": list(timesteps), "rows": rows, "trained": trained, "reused": reused,
              "wall_seconds": round(time.time() - t0, 1)}
    write_json(out / "compare.json", result)
    (out / "compare.md").write_text(compare_report(result))
    compare_plot(rows, out / "compare.png", settings=list(settings))
    return result


def compare_curves(data: str | Path, out: str | Path, *, budgets: tuple[int, ...],
                   label_shots: tuple[int | None, ...] = CompareConfig.label_shots,
                   draws: int = CompareConfig.draws, methods=CompareConfig.methods,
                   settings=CompareConfig.settings, configs: dict[str, MethodConfig] | None = None,
                   probe: GridProbe | None = None, progress: bool = True, **kwargs) -> dict:
    """The comparison as curves: ``compare`` at every budget of ``budgets`` (training images seen), each in
    ``out/budget-<images>`` (trained runs cached there, so the grid can be built one budget at a time and
    resumed), then, at the largest budget, each method's best pair probed with ``label_shots`` labelled images
    per class (``probe.label_curve``, ``draws`` random draws; None: all). ``configs``: each method's config,
    rescaled to each budget (``at_budget``; default ``default_configs``). ``kwargs`` go to ``compare``.

    Writes ``curves.json``, ``curves.md``, ``curves_compute.png`` (test top-1 against pretraining CPU-hours)
    and ``curves_labels.png`` (against labelled images per class) to ``out``; returns the dict.
    """
    budgets = tuple(sorted(set(budgets)))
    if not budgets or min(budgets) < 1:
        raise DiffprobeError(f"budgets must be positive numbers of training images seen, got {budgets}")
    out = Path(out)
    seed = kwargs.get("seed", CompareConfig.seed)
    probe = probe or GridProbe(seed=seed)
    templates = {**default_configs(methods, image_size=kwargs.get("image_size", CompareConfig.image_size),
                                   seed=seed), **(configs or {})}
    rows, runs, labels = [], {}, []
    for b in budgets:
        r = compare(data, out / f"budget-{b}", methods=methods, settings=settings, budget_images=b, probe=probe,
                    configs={m: at_budget(m, c, b) for m, c in templates.items() if m in methods},
                    progress=progress, **kwargs)
        runs[b] = {"trained": r["trained"], "reused": r["reused"]}
        rows += rows_with_compute(r)
    _estimate_cpu_hours(rows)
    for row in (x for x in rows if x["budget_images"] == budgets[-1] and x["eval"] == "linear probe"):
        store = FeatureStore(read_json(Path(row["probe_dir"]) / "results.json")["feature_store"])
        curve = label_curve(store, row["block"], row["timestep"], shots=tuple(label_shots), draws=draws, probe=probe,
                            seed=seed)
        labels += [{"setting": row["setting"], "method": row["method"], "budget_images": budgets[-1],
                    "block": row["block"], "timestep": row["timestep"], "n_classes": len(store.classes), **point}
                   for point in curve]
    result = {"budgets": list(budgets), "label_shots": list(label_shots), "draws": draws,
              "threads": torch.get_num_threads(), "methods": list(methods), "settings": list(settings),
              "rows": rows, "label_curves": labels, "runs": runs}
    _write_curves(result, out)
    return result


def rows_with_compute(result: dict) -> list[dict]:
    """A ``compare.json``'s rows with their budget and pretraining compute: CPU-hours (wall time x the threads
    torch used) for runs trained on the CPU, GPU-hours for runs trained on a GPU (``cpu_hours`` None there)."""
    threads, rows = result.get("threads"), []
    for row in result["rows"]:
        gpu = row.get("device", "cpu") != "cpu"
        rows.append({**row, "budget_images": result["budget_images"],
                     "cpu_hours": None if gpu or threads is None else row["train_seconds"] * threads / 3600,
                     "gpu_hours": row["train_seconds"] / 3600 if gpu else None, "cpu_hours_estimated": False})
    return rows


def _estimate_cpu_hours(rows: list[dict]) -> None:
    """For rows without CPU-hours (trained on a GPU): the CPU-hours the same method and setting would take at the
    images-per-CPU-hour measured at its largest CPU-trained budget (training cost is linear in images seen)."""
    for row in (x for x in rows if x["cpu_hours"] is None):
        ref = [x for x in rows if x["cpu_hours"] is not None and not x["cpu_hours_estimated"]
               and (x["setting"], x["method"]) == (row["setting"], row["method"])]
        if ref:
            r = max(ref, key=lambda x: x["images_seen"])
            row.update(cpu_hours=r["cpu_hours"] * row["images_seen"] / r["images_seen"], cpu_hours_estimated=True)


def merge_curves(sources: list[str | Path], out: str | Path) -> dict:
    """Join comparison grids built in pieces (budgets run apart, on other machines, one method per process)
    into one set of curves: every ``compare.json`` and ``curves.json`` under ``sources``. Each method's label
    curve is kept at the largest budget that has one. A (setting, method, eval, budget) met twice is an error.

    Rows trained on a GPU keep their GPU-hours and get CPU-hours estimated from the same method's CPU rate
    (``cpu_hours_estimated``; drawn hollow). Writes ``curves.json``, ``curves.md`` and both figures to ``out``.
    """
    rows, labels, seen = [], [], {}
    for src in map(Path, sources):
        found = sorted(src.rglob("compare.json"))
        if not found:
            raise DiffprobeError(f"{src}: no compare.json below it; pass folders written by 'diffprobe compare'")
        for f in found:
            for row in rows_with_compute(read_json(f)):
                key = (row["setting"], row["method"], row["eval"], row["budget_images"])
                if key in seen:
                    raise DiffprobeError(f"{f} and {seen[key]} both hold {key}; pass each piece once")
                seen[key] = f
                rows.append(row)
        for f in src.rglob("curves.json"):
            c = read_json(f)
            labels += [{"budget_images": c["budgets"][-1], **x} for x in c["label_curves"]]
    _estimate_cpu_hours(rows)
    largest = {}
    for x in labels:
        k = (x["setting"], x["method"])
        largest[k] = max(largest.get(k, 0), x["budget_images"])
    labels = [x for x in labels if x["budget_images"] == largest[(x["setting"], x["method"])]]
    order = {m: i for i, m in enumerate(METHODS)}
    methods = sorted({x["method"] for x in rows}, key=lambda m: order.get(m, len(order)))
    settings = [s for s in SETTINGS if any(x["setting"] == s for x in rows)]
    result = {"budgets": sorted({x["budget_images"] for x in rows}),
              "label_shots": list(dict.fromkeys(x["shots"] for x in labels)),
              "draws": max((len(x["draws"]) for x in labels), default=0), "methods": methods, "settings": settings,
              "rows": sorted(rows, key=lambda x: (x["setting"], order.get(x["method"], 99), x["budget_images"])),
              "label_curves": sorted(labels, key=lambda x: (x["setting"], order.get(x["method"], len(order)))),
              "sources": [str(s) for s in sources]}
    _write_curves(result, Path(out))
    return result


def _write_curves(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "curves.json", result)
    curves_plots(result, out)
    (out / "curves.md").write_text(curves_report(result))

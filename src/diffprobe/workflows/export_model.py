"""The ``export`` command: a classifier bundle as a model to ship: small weights, its split beside it, its own
test numbers. (The validation app's ``app.export`` does another job: a project's labels given back, and a bundle
fitted on them.)

``export_model(bundle, out, split=...)`` writes ``out`` (the layout of ``models/ndsb``):

    bundle.json, probe.safetensors, backbone/   the bundle, backbone weights cast to fp16 unless fp16=False
                                                (half the size; loaded back as fp32, but the rounding can
                                                flip predictions: compare the two accuracies below)
    split.csv, split.json                       the split the probe was chosen on (root relative to ``out``)
    test_metrics.json                           the exported model evaluated on the split's test part, and
                                                the bundle's own test accuracy (bundle_test_accuracy)
    test_report/                                that evaluation in full (report.md, metrics.json: per-class
                                                F1, calibration, unknown flags, abundance errors)

A reading ensemble (``probe.ensemble``) exports the same way: its backbones are cast, and with ``head_fp16``
every member's ``probe.safetensors``; ``polarity`` applies to every member.

The folder is written next to ``out`` and renamed into place when complete, so an interrupted export
never leaves half a model; an existing ``README.md`` (the model card, written by people) is kept.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.manifest import Manifest
from ..data.preprocess import Preprocess
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..utils import DiffprobeError, atomic_dir, code_version, portable_data_path, read_json, write_json
from .evaluate import evaluate_bundle

log = logging.getLogger(__name__)

CARD = "README.md"


def cast_safetensors(path: Path, dtype: torch.dtype = torch.float16) -> None:
    """Rewrite a safetensors file with its floating tensors in ``dtype`` (integer tensors and metadata kept)."""
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, path, metadata=meta)


LEDGER_FIELDS = ("date", "model", "model_version", "commit", "part", "n_images", "accuracy", "macro_f1", "log_loss",
                 "precision")


def record_test_read(ledger: str | Path, model: str | Path, model_version: str | None, metrics: dict) -> None:
    """Append one row (``LEDGER_FIELDS``) to the CSV ``ledger``, its header written first when it is new."""
    import csv  # noqa: PLC0415
    from datetime import datetime, timezone  # noqa: PLC0415

    ledger = Path(ledger)
    ledger.parent.mkdir(parents=True, exist_ok=True)
    new = not ledger.is_file() or ledger.stat().st_size == 0
    row = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "model": str(model),
           "model_version": model_version or "", "commit": code_version() or "", **{
               k: metrics.get(k) for k in LEDGER_FIELDS[4:]}}
    with open(ledger, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LEDGER_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def export_model(bundle: str | Path, out: str | Path, *, split: str | Path | None = None, fp16: bool = True,
                 head_fp16: bool = False, overwrite: bool = False, polarity: str | None = None,
                 crop: bool | None = None, model_version: str | None = None, ledger: str | Path | None = None,
                 progress: bool = True) -> dict:
    """Write the model folder ``out`` from ``bundle``; return test_metrics.json's dict (empty without a split).

    ``model_version`` is written into ``bundle.json`` (and each member's). ``ledger``: a CSV to which this read of
    the test split is appended (``record_test_read``), so every look at a shipped model's test images is on record.

    ``fp16`` / ``head_fp16`` store the backbone's / the head's weights in fp16 (they compute in fp32 either
    way). ``polarity`` ("auto" or "fixed") and ``crop`` replace the bundle's preprocessing settings of that name
    (``data.preprocess``; None keeps them). ``bundle`` may be a reading ensemble, whose members are then all
    changed alike; ``crop`` is refused for one, as its members' crop settings are what makes them differ."""
    bundle, out = Path(bundle), Path(out)
    source = load_bundle(bundle)  # refuse a broken bundle before writing anything
    ensemble = isinstance(source, ReadingEnsemble)
    if ensemble and crop is not None:
        settings = ", ".join(f"{n}/ {str(m.preprocess.crop).lower()}" for n, m in zip(source.names, source.members,
                                                                                    strict=True))
        raise DiffprobeError(f"{bundle}: --crop / --no-crop is refused for a reading ensemble: its members' crop "
                             f"settings ({settings}) are what makes them read each image differently, and the option "
                             f"would give them all one; leave it out")
    if out.exists() and any(p.name != CARD for p in out.iterdir()) and not overwrite:
        raise DiffprobeError(f"{out}: already holds a model; pass --overwrite to replace it (its {CARD} is kept)")
    with atomic_dir(out) as tmp:
        shutil.copytree(bundle, tmp, dirs_exist_ok=True)
        if fp16:
            for weights in tmp.rglob("*.safetensors"):  # the shared backbone's and any member's own
                if "backbone" in weights.relative_to(tmp).parts:
                    cast_safetensors(weights)
        heads = [tmp / name for name in source.names] if ensemble else [tmp]  # folders of probe + bundle.json
        changes = {k: v for k, v in (("polarity", polarity), ("crop", crop)) if v is not None}
        for folder in heads + ([tmp] if ensemble and model_version else []):
            if head_fp16 and folder in heads:
                cast_safetensors(folder / "probe.safetensors")
            if changes or model_version:
                meta = read_json(folder / "bundle.json")
                if changes and folder in heads:
                    meta["preprocess"] = Preprocess.from_dict({**meta["preprocess"], **changes}).to_dict()
                if model_version:
                    meta["model_version"] = model_version
                write_json(folder / "bundle.json", meta)
        metrics = {}
        if split is not None:
            Manifest.load(split).save(tmp / "split.csv")
            sidecar = read_json(tmp / "split.json")
            # $DIFFPROBE_DATA/... (or a relative root) keeps the folder usable wherever the data and the
            # repository are.
            sidecar["root"] = portable_data_path(sidecar["root"]) or os.path.relpath(sidecar["root"], out.resolve())
            info = sidecar.get("info") or {}
            if info.get("source"):  # where the split was made from: named the same portable way, not a machine's folder
                info["source"] = portable_data_path(info["source"]) or info["source"]
            write_json(tmp / "split.json", sidecar)
            r = evaluate_bundle(tmp, tmp / "split.csv", tmp / "test_report", part="test", progress=progress)
            for name in ("report.md", "metrics.json"):  # they name the folder the model will live in, not the draft
                report = tmp / "test_report" / name
                report.write_text(report.read_text().replace(str(tmp), str(out)))
            c = r["calibration"]
            metrics = {"command": f"diffprobe evaluate --model {out} --data {out}/split.csv --part test --out OUT",
                       "part": "test", "n_images": r["n_images"], "accuracy": r["accuracy"],
                       "macro_f1": r["macro_f1"], "balanced_accuracy": r["balanced_accuracy"],
                       "log_loss": r.get("log_loss"), "precision": r.get("precision"),
                       "chance_accuracy": r["chance_accuracy"], "ece_before": c["ece_before"],
                       "ece_after": c["ece_after"], "flagged_unknown_share": r.get("flagged_unknown_share")}
            # The probe's own test score, from the features it was fitted on: fp16 rounding of the backbone
            # can move it (by 1.1 points for the NDSB study's probe).
            before = source.meta.get("metrics", {}).get("test_accuracy")
            metrics["bundle_test_accuracy"] = before
            if (fp16 or head_fp16) and before is not None and abs(before - r["accuracy"]) > 0.005:
                log.warning("%s: fp16 weights change test accuracy from %.2f%% to %.2f%%; pass --fp32 (and no "
                            "--fp16-head) to ship the model unchanged", out, 100 * before, 100 * r["accuracy"])
            write_json(tmp / "test_metrics.json", metrics)
            if ledger is not None:
                record_test_read(ledger, out, model_version, metrics)
        if (out / CARD).is_file():
            shutil.copyfile(out / CARD, tmp / CARD)
    return metrics

"""Classify new images with a bundle: a CSV of predictions plus per-sample abundances.

From Python, in three lines::

    from diffprobe import ClassifierBundle
    from diffprobe.evaluate.predict import predict_paths
    rows = predict_paths(ClassifierBundle.load("run/bundle"), ["a.jpg", "b.png"])

A reading ensemble (``probe.ensemble``; ``probe.load_bundle`` opens either) is used the same way.

Each row is a dict: ``path``, ``label`` and ``probability`` (the most probable class and its
calibrated probability), ``top2_label``/``top2_probability``, ``top3_label``/``top3_probability``,
and ``unknown`` (True when the image scores below the bundle's unknown threshold, i.e. looks
unlike every class the model knows; empty when the bundle has no threshold). Unreadable files
are left out of the rows and listed by ``predict_files``.

``predict_files(..., format="kaggle")`` writes the predictions in the layout of the 2015 National Data
Science Bowl's submissions instead (``kaggle_rows``): a header ``image,<class 1>,...,<class C>`` in the
bundle's class order, then one row per image with its file name and the calibrated probability of every
class, so a result can be scored with the competition's multi-class log loss.

The sample of an image (for the abundance table) is its folder: images in ``IMAGES/station_3/``
count towards sample ``IMAGES/station_3``.

Large collections: ``predict_files`` classifies the images in shards of ``shard_size``, each saved to
``<stem>.parts/`` when done (atomically), so a run that is interrupted resumes without redoing finished shards.
Under ``torchrun`` / ``accelerate launch`` (Accelerate's ``PartialState``) the processes share the shards and the
main process writes the one CSV, in input order; every batch is the same as in one process, so the CSV is too.
The parts folder is removed once the CSV is written.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
from scipy.special import softmax
from tqdm.auto import tqdm

from ..config.evaluate import PredictConfig
from ..data.manifest import open_dataset, scan_folder
from ..probe.bundle import ClassifierBundle
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..utils import DiffprobeError, hash_json, read_json, write_json
from .abundance import sample_abundances, write_rows_csv
from .unknown import flag_unknown, shift_warning

log = logging.getLogger(__name__)

TOP_K = 3


def collect_images(inputs: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Folders (searched recursively), image files and manifests (.csv/.tsv) -> (files, sample of each)."""
    files: list[Path] = []
    samples: list[str] = []
    for item in map(Path, inputs):
        if item.is_dir():
            m = scan_folder(item, labelled=False)
        elif item.is_file() and item.suffix.lower() in (".csv", ".tsv"):
            m = open_dataset(item, labelled=False)
        else:
            # A single file, readable or not: unreadable ones are reported by the caller.
            files.append(item)
            samples.append(item.parent.name or ".")
            continue
        for i in range(len(m)):
            files.append(m.full_path(i))
            samples.append((Path(m.root.name) / Path(m.paths[i]).parent).as_posix())
    return files, samples


def classify_files(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], *, batch_size: int = 256,
                   size_scale: float = 1.0, progress: bool = True,
                   bar: tqdm | None = None) -> tuple[list[int], np.ndarray, list[tuple[str, str]]]:
    """Read, preprocess and classify files in batches (object sizes times ``size_scale``); ``bar``: a progress
    bar to advance instead of a new one.

    Returns (indices of the readable files, their logits (N_ok, C), [(path, reason)] of the others).
    """
    ok, logits, skipped = [], [], []
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=len(paths), desc="classifying", unit="img", disable=not progress, mininterval=1.0)
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        images, meta, ok_chunk, skipped_chunk = bundle.load_paths(chunk)
        if len(images):
            logits.append(bundle.logits(images, meta, size_scale=size_scale))
        ok += [start + i for i in ok_chunk]
        skipped += skipped_chunk
        bar.update(len(chunk))
    if own_bar:
        bar.close()
    z = np.concatenate(logits) if logits else np.zeros((0, len(bundle.classes)), np.float32)
    return ok, z, skipped


def classify_sharded(bundle: ClassifierBundle | ReadingEnsemble, paths: list[Path], parts: Path, *,
                     shard_size: int = PredictConfig.shard_size, batch_size: int = PredictConfig.batch_size,
                     size_scale: float = 1.0, progress: bool = True,
                     ) -> tuple[list[int], np.ndarray, list[tuple[str, str]]] | None:
    """``classify_files`` in shards saved under ``parts`` (``shard-NNNNNN.npz``, written atomically): shards already
    there are not computed again, and under a launcher each process takes every ``world``-th shard. Returns the
    whole result, in input order, on the main process; None on the others (after every shard is done)."""
    import torch  # noqa: PLC0415
    from accelerate import PartialState  # noqa: PLC0415

    PredictConfig(shard_size=shard_size, batch_size=batch_size)  # refused, naming the setting, if out of bounds
    state = PartialState(cpu=not torch.cuda.is_available())  # else a launch on CPUs is not seen as one
    n_shards = -(-len(paths) // shard_size)
    key = hash_json({"paths": [str(p) for p in paths], "bundle": str(Path(bundle.path).resolve()),
                     "meta": bundle.meta, "scale": size_scale, "shard": shard_size, "batch": batch_size})
    if state.is_main_process:
        if (parts / "key.json").is_file() and read_json(parts / "key.json") != {"key": key}:
            log.warning("%s holds the shards of another run (other images, model or settings): starting again",
                        parts)
            shutil.rmtree(parts)
        parts.mkdir(parents=True, exist_ok=True)
        write_json(parts / "key.json", {"key": key})
    state.wait_for_everyone()

    def shard_file(i: int) -> Path:
        return parts / f"shard-{i:06d}.npz"

    def span(i: int) -> range:
        return range(i * shard_size, min(len(paths), (i + 1) * shard_size))

    mine = [i for i in range(n_shards) if i % state.num_processes == state.process_index]
    done = [i for i in mine if shard_file(i).is_file()]
    bar = tqdm(total=sum(len(span(i)) for i in mine), initial=sum(len(span(i)) for i in done), unit="img",
               desc="classifying", disable=not (progress and state.is_main_process), mininterval=1.0)
    for i in mine:
        if i in done:
            continue
        r = span(i)
        ok, z, skipped = classify_files(bundle, paths[r.start:r.stop], batch_size=batch_size,
                                        size_scale=size_scale, bar=bar)
        tmp = shard_file(i).with_suffix(f".{state.process_index}.partial.npz")
        np.savez(tmp, ok=np.asarray(ok, np.int64), logits=z, skipped=np.asarray(skipped, str).reshape(-1, 2))
        os.replace(tmp, shard_file(i))
    bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    ok_all, logits, skipped_all = [], [], []
    for i in range(n_shards):
        with np.load(shard_file(i)) as f:
            ok_all += [span(i).start + int(k) for k in f["ok"]]
            logits.append(f["logits"])
            skipped_all += [(str(p), str(reason)) for p, reason in f["skipped"]]
    z = np.concatenate(logits) if logits else np.zeros((0, len(bundle.classes)), np.float32)
    return ok_all, z, skipped_all


def prediction_rows(bundle: ClassifierBundle | ReadingEnsemble, paths: list, logits: np.ndarray) -> list[dict]:
    """One row per image: top-3 labels with calibrated probabilities and the unknown flag."""
    probs = softmax(logits / bundle.temperature, axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    flags = flag_unknown(logits, bundle.meta)
    rows = []
    for i, p in enumerate(paths):
        row = {"path": str(p)}
        for rank in range(TOP_K):
            prefix = "" if rank == 0 else f"top{rank + 1}_"
            has = rank < order.shape[1]
            row[f"{prefix}label"] = bundle.classes[order[i, rank]] if has else ""
            row[f"{prefix}probability"] = round(float(probs[i, order[i, rank]]), 6) if has else ""
        row["unknown"] = bool(flags[i]) if flags is not None else ""
        rows.append(row)
    return rows


def kaggle_rows(bundle: ClassifierBundle | ReadingEnsemble, paths: list, logits: np.ndarray) -> list[dict]:
    """The 2015 NDSB submission layout: one row per image, ``image`` (its file name), then the calibrated
    probability of each class, in the bundle's class order (columns named by the class names)."""
    probs = softmax(logits / bundle.temperature, axis=1)
    # 6 significant digits, not 6 decimals: a tiny probability must stay above 0 for the log loss.
    return [{"image": Path(p).name, **{c: f"{q:.6g}" for c, q in zip(bundle.classes, row, strict=True)}}
            for p, row in zip(paths, probs, strict=True)]


def resolve_size_scale(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], scale: float | str | None,
                       batch_size: int = 256, progress: bool = True) -> float:
    """``bundle.size_scale`` for files: with ``"auto"``, the measurements of every readable file are read
    first (decoding only, no model: a small share of the classification's time)."""
    if scale != "auto" or not bundle.uses_metadata:
        return bundle.size_scale(None, scale)
    metas = [bundle.load_paths(paths[s:s + batch_size])[1] for s in tqdm(
        range(0, len(paths), batch_size), desc="measuring sizes", unit="batch", disable=not progress)]
    return bundle.size_scale(np.concatenate([m for m in metas if len(m)] or [np.zeros((0, 1))]), "auto")


def _duplicate_names(files: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    for f in files:
        seen[f.name] = seen.get(f.name, 0) + 1
    return sorted(n for n, k in seen.items() if k > 1)


def predict_paths(bundle: ClassifierBundle | ReadingEnsemble, paths: list[str | Path], *, batch_size: int = 256,
                  progress: bool = False) -> list[dict]:
    """Prediction rows for the readable files among ``paths`` (see the module docstring)."""
    paths = list(paths)
    ok, logits, _ = classify_files(bundle, paths, batch_size=batch_size, progress=progress)
    return prediction_rows(bundle, [paths[i] for i in ok], logits)


def predict_files(bundle: ClassifierBundle | ReadingEnsemble | str | Path, inputs: list[str | Path],
                  out_csv: str | Path, *, batch_size: int = PredictConfig.batch_size, progress: bool = True,
                  format: str = PredictConfig.format,  # noqa: A002
                  size_scale: float | str | None = None, shard_size: int = PredictConfig.shard_size) -> dict | None:
    """Classify folders / files / manifests; write ``out_csv``, ``<stem>.abundance.csv`` and, if any
    file was unreadable, ``<stem>.skipped.csv``. Returns {"n_images", "n_skipped", "n_unknown", "size_scale",
    "files"}. ``bundle``: a bundle, a reading ensemble or the folder of either. ``size_scale``: the pixel scale of
    the object sizes (``ClassifierBundle.size_scale``). ``shard_size``: images per saved, resumable shard (see the
    module docstring). Under a launcher only the main process writes and returns; the others return None.

    ``format``: ``csv`` (default; the top-3 rows of the module docstring) or ``kaggle`` (the NDSB
    submission layout of ``kaggle_rows``; its images are named by file name alone, so two inputs with the
    same file name are refused).
    """
    # Refused, naming the setting, if out of their declared bounds.
    PredictConfig(batch_size=batch_size, format=format, shard_size=shard_size)
    bundle = load_bundle(bundle) if isinstance(bundle, (str, Path)) else bundle
    files, samples = collect_images(inputs)
    if not files:
        raise DiffprobeError(f"no image files found in {', '.join(map(str, inputs))}")
    if format == "kaggle" and (dups := _duplicate_names(files)):
        raise DiffprobeError(f"the kaggle format names images by file name, and {len(dups)} names occur more "
                             f"than once (e.g. {', '.join(dups[:3])}); classify each folder separately or use "
                             f"--format csv, which keeps the paths")
    scale = resolve_size_scale(bundle, files, size_scale, batch_size, progress)
    out = Path(out_csv)
    parts = out.with_name(out.stem + ".parts")
    result = classify_sharded(bundle, files, parts, shard_size=shard_size, batch_size=batch_size, size_scale=scale,
                              progress=progress)
    if result is None:
        return None
    ok, logits, skipped = result
    written = {"predictions": out}
    skipped_csv = out.with_name(out.stem + ".skipped.csv")
    if skipped:
        written["skipped"] = write_rows_csv([{"path": p, "reason": r} for p, r in skipped], skipped_csv)
    else:
        skipped_csv.unlink(missing_ok=True)  # an old list would be misleading
    if not ok:
        raise DiffprobeError(f"none of the {len(files)} files could be read; first problem: "
                             f"{skipped[0][0]}: {skipped[0][1]} (all listed in {skipped_csv})")
    make_rows = kaggle_rows if format == "kaggle" else prediction_rows
    write_rows_csv(make_rows(bundle, [files[i] for i in ok], logits), out)
    flags = flag_unknown(logits, bundle.meta)
    probs = softmax(logits / bundle.temperature, axis=1)
    abundance = sample_abundances([samples[i] for i in ok], probs, bundle.classes, bundle.meta, unknown=flags)
    written["abundance"] = write_rows_csv(abundance, out.with_name(out.stem + ".abundance.csv"))
    shutil.rmtree(parts, ignore_errors=True)  # the CSV holds everything now
    if flags is None:
        log.warning("%s has no unknown threshold; run 'diffprobe calibrate' to flag unknown images", bundle.path)
    shift = shift_warning(logits, bundle.meta)
    if shift:
        log.warning("%s", shift)
    return {"n_images": len(ok), "n_skipped": len(skipped),
            "n_unknown": int(flags.sum()) if flags is not None else None, "shift_warning": shift,
            "size_scale": scale, "files": written}

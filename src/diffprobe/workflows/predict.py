"""The ``predict`` command: classify folders, image files and manifests with a bundle or reading ensemble, and
write a CSV of predictions (``evaluate.predict.prediction_rows``, or the NDSB submission layout of
``evaluate.predict.kaggle_rows``) plus per-sample abundances.

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
from ..evaluate.abundance import sample_abundances
from ..evaluate.predict import classify_files, kaggle_rows, prediction_rows, resolve_size_scale
from ..evaluate.unknown import flag_unknown, shift_warning
from ..probe.bundle import ClassifierBundle
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..utils import DiffprobeError, hash_json, read_json, write_json, write_rows_csv

log = logging.getLogger(__name__)


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


def _duplicate_names(files: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    for f in files:
        seen[f.name] = seen.get(f.name, 0) + 1
    return sorted(n for n, k in seen.items() if k > 1)


def predict_files(bundle: ClassifierBundle | ReadingEnsemble | str | Path, inputs: list[str | Path],
                  out_csv: str | Path, *, batch_size: int = PredictConfig.batch_size, progress: bool = True,
                  format: str = PredictConfig.format,  # noqa: A002
                  size_scale: float | str | None = None, shard_size: int = PredictConfig.shard_size) -> dict | None:
    """Classify folders / files / manifests; write ``out_csv``, ``<stem>.abundance.csv`` and, if any
    file was unreadable, ``<stem>.skipped.csv``. Returns {"n_images", "n_skipped", "n_unknown", "size_scale",
    "files"}. ``bundle``: a bundle, a reading ensemble or the folder of either. ``size_scale``: the pixel scale of
    the object sizes (``ClassifierBundle.size_scale``). ``shard_size``: images per saved, resumable shard (see the
    module docstring). Under a launcher only the main process writes and returns; the others return None.

    ``format``: ``csv`` (default; the top-3 rows of ``evaluate.predict.prediction_rows``) or ``kaggle`` (the NDSB
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

"""The ``shift`` command: how a bundle's accuracy degrades under the instrument-like changes of the images of
``evaluate.shifts`` (every shift, severities 1 to 5, applied to the raw images before the bundle's preprocessing).

Outputs: ``shift.json``, ``shift.md``, ``robustness.png`` and ``shift_examples.png`` (one image under every shift and
severity, so the levels can be judged by eye).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config.evaluate import ShiftConfig
from ..data.io import ImageReadError, read_image
from ..data.manifest import prepare_split
from ..evaluate.crossdata import select_part
from ..evaluate.shifts import LEVELS, SHIFTS, UNITS, apply_shift
from ..probe.bundle import ClassifierBundle
from ..probe.ensemble import ReadingEnsemble, load_bundle
from ..probe.metrics import chance_accuracy, classification_metrics
from ..report.plots import image_grid, robustness_plot
from ..report.tables import shift_report
from ..utils import DiffprobeError, write_json


def run_shift_suite(bundle: ClassifierBundle | ReadingEnsemble | str | Path, data: str | Path, out_dir: str | Path, *,
                    shifts: tuple[str, ...] | None = None, severities: tuple[int, ...] = ShiftConfig.severities,
                    part: str = ShiftConfig.part, seed: int = ShiftConfig.seed,
                    split_seed: int = ShiftConfig.split_seed, progress: bool = True) -> dict:
    """Accuracy and macro F1 of ``bundle`` on the ``part`` of ``data`` (a split CSV, or a folder split
    as 'diffprobe split --seed split_seed' would) under every shift and severity (``shifts``: names of
    ``evaluate.shifts.SHIFTS``; None: all of them).

    Writes shift.json, shift.md, robustness.png and shift_examples.png to ``out_dir``; returns the results.
    """
    bundle = load_bundle(bundle) if isinstance(bundle, (str, Path)) else bundle
    shifts = tuple(SHIFTS) if shifts is None else shifts
    for s in shifts:
        if s not in SHIFTS:
            raise DiffprobeError(f"unknown shift {s!r}; choose from {list(SHIFTS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = select_part(prepare_split(data, seed=split_seed), part, data)
    index = {c: k for k, c in enumerate(bundle.classes)}
    skipped_by_class = {c: n for c, n in m.counts().items() if c not in index}
    raw, y, keys, unreadable = [], [], [], []
    for i in tqdm(range(len(m)), desc="reading images", disable=not progress, mininterval=1.0):
        if m.labels[i] not in index:
            continue
        try:
            raw.append(read_image(m.full_path(i)))
        except ImageReadError as e:
            unreadable.append((m.paths[i], e.reason))
            continue
        y.append(index[m.labels[i]])
        keys.append(m.paths[i])
    if not raw:
        raise DiffprobeError(f"{data}: no readable {part} images of the model's classes {bundle.classes[:6]} ...")
    y = np.array(y)

    def score(images: list[np.ndarray]) -> dict:
        return classification_metrics(y, bundle.logits(*bundle.prepare(images)).argmax(1))

    res = {"bundle": str(bundle.path), "data": str(data), "part": part, "seed": seed, "n_images": len(y),
           "n_skipped": int(sum(skipped_by_class.values())), "skipped_by_class": skipped_by_class,
           "n_unreadable": len(unreadable), "chance_accuracy": chance_accuracy(y), "clean": score(raw),
           "levels": {s: {str(v): UNITS[s].format(LEVELS[s][v - 1]) for v in severities} for s in shifts},
           "shifts": {}}
    bar = tqdm(total=len(shifts) * len(severities), desc="shifts", unit="setting", disable=not progress)
    for s in shifts:
        res["shifts"][s] = []
        for v in severities:
            shifted = [apply_shift(im, s, v, seed=seed, key=k) for im, k in zip(raw, keys)]
            res["shifts"][s].append({"severity": v, **score(shifted)})
            bar.update()
    bar.close()
    write_json(out / "shift.json", res)
    (out / "shift.md").write_text(shift_report(res))
    robustness_plot(res, out / "robustness.png")
    examples_plot(raw[0], shifts, severities, out / "shift_examples.png", seed=seed, key=keys[0])
    return res


def examples_plot(image: np.ndarray, shifts, severities, path: str | Path, *, seed: int = 0, key: str = "") -> Path:
    """One raw image under every shift (rows) and severity (columns), so the levels can be judged by eye."""
    rows = [[image if v == 0 else apply_shift(image, s, v, seed=seed, key=key) for v in (0, *severities)]
            for s in shifts]
    return image_grid(rows, path, row_labels=list(shifts), label_width=0.8, dpi=90, cell=1.3,
                      col_titles=["clean"] + [f"severity {v}" for v in severities])

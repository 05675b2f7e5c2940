"""How long ``diffprobe app init`` takes on a collection: decoding, measuring and classifying every image and
writing the project (features, predictions, uncertainty, the database), end to end, timed as a user runs it.

    python benchmarks/app_init.py --images FOLDER --model models/ndsb/s1 [--threads 2] [--precision fp32 auto]

Writes ``benchmarks/results/app_init.json`` and ``.md``: per precision (fp32 first: every CPU has it), the images,
the wall time, the rate and the time the same rate gives for 25,000 images (the issue's yardstick).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write
from diffprobe.utils import read_json


def time_init(images: str, model: str, threads: int, precision: str) -> tuple[float, int]:
    """Seconds of one ``diffprobe app init`` run, and the objects it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "diffprobe.cli", "app", "init", str(project), "--images", images,
                        "--model", model, "--precision", precision], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        return time.perf_counter() - start, read_json(project / "project.json")["n_objects"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--model", default="models/ndsb")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / OpenMP threads")
    ap.add_argument("--precision", nargs="+", default=["fp32", "auto"],
                    help="one run each; the first gives the top-level numbers the target is checked on")
    a = ap.parse_args()
    rows = []
    for precision in a.precision:
        seconds, n = time_init(a.images, a.model, a.threads, precision)
        rows.append({"precision": precision, "n_images": n, "seconds": round(seconds, 1),
                     "images_per_s": round(n / seconds, 1), "seconds_for_25000": round(25000 * seconds / n, 1)})
    result = {"model": a.model, "model_version": read_json(Path(a.model) / "bundle.json").get("model_version"),
              "threads": a.threads, **rows[0], "rows": rows}
    write("app_init", result, [f"`diffprobe app init` with `{a.model}` on {r['n_images']:,} images, {a.threads} "
                               f"thread(s), precision {r['precision']}: {r['seconds']:.0f} s ({r['images_per_s']:.0f} "
                               f"images/s); 25,000 images at that rate: {r['seconds_for_25000'] / 60:.1f} min."
                               for r in rows])


if __name__ == "__main__":
    main()

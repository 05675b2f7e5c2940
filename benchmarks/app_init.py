"""How long ``diffprobe app init`` takes on a collection: decoding, measuring and classifying every image and
writing the project (features, predictions, uncertainty, the database), end to end, timed as a user runs it.

    python benchmarks/app_init.py --images FOLDER --model models/ndsb [--threads 2]

Writes ``benchmarks/results/app_init.json`` and ``.md``: the images, the wall time, the rate and the time the
same rate gives for 25,000 images (the issue's yardstick).
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, help="image folder")
    ap.add_argument("--model", default="models/ndsb")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch / OpenMP threads")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "diffprobe.cli", "app", "init", str(project), "--images", a.images,
                        "--model", a.model], check=True, env={**os.environ, "OMP_NUM_THREADS": str(a.threads)})
        seconds = time.perf_counter() - start
        n = read_json(project / "project.json")["n_objects"]
    result = {"model": a.model, "model_version": read_json(Path(a.model) / "bundle.json").get("model_version"),
              "n_images": n, "threads": a.threads, "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 1),
              "seconds_for_25000": round(25000 * seconds / n, 1)}
    write("app_init", result, [f"`diffprobe app init` with `{a.model}` on {n:,} images, {a.threads} thread(s): "
                               f"{seconds:.0f} s ({n / seconds:.0f} images/s); 25,000 images at that rate: "
                               f"{result['seconds_for_25000'] / 60:.1f} min."])


if __name__ == "__main__":
    main()

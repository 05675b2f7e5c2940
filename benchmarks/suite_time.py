"""How long the test suite takes: the quick loop (``-m "not slow"``) and the whole suite, each run once from the
repository root with the venv active and ``$DIFFPROBE_DATA`` set (the real-image tests read it), with pytest's
own count of passed, failed and skipped tests.

    python benchmarks/suite_time.py [--threads 2]

Run it in a clean clone after ``.ci/run`` has built its venv (``.venv/bin/python benchmarks/suite_time.py``) for
the number CI sees; the JSON names the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from _common import write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES = {"quick": ["-m", "not slow"], "whole": []}
COUNTS = re.compile(r"(\d+) (passed|failed|skipped|deselected|errors?)")


def run_suite(args: list[str], threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return {"seconds": round(seconds, 1), "exit_status": done.returncode, "summary": summary,
            **{kind: int(n) for n, kind in COUNTS.findall(summary)}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = {}
    for name, args in SUITES.items():
        rows[name] = run_suite(args, a.threads)
        print(name, rows[name], flush=True)
    write("suite_time", {"threads": a.threads, "suites": rows},
          ["| suite | wall time | result |", "|---|---|---|"]
          + [f"| {name} | {r['seconds'] / 60:.1f} min | {r['summary']} |" for name, r in rows.items()])


if __name__ == "__main__":
    main()

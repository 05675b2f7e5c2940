"""The speed benchmarks, one registry: each names its script, the result JSON it writes and its target.

    python benchmarks/run.py --list                    # every benchmark, its result file and its target
    python benchmarks/run.py --check [NAME ...]        # each target against the committed result (runs nothing)
    python benchmarks/run.py NAME [ARGS ...]           # runs benchmarks/<script> ARGS, then checks its target

Exit status: 0 when every target checked is met, 1 when one is missed (or a run fails), 2 on a usage error. A
benchmark without a target (a measurement to read, not a bar to clear) or without a committed result is reported,
not failed. Each script also runs alone, as before (``python benchmarks/<script> ...``); the finished accuracy
experiments are in ``experiments/`` (``experiments/README.md``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

Check = Callable[[dict], tuple[bool, str]]  # result JSON -> (target met, what was measured)


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str  # in benchmarks/
    results: tuple[str, ...]  # result JSON files in benchmarks/results/ that carry the target's numbers
    target: str | None  # what it must reach; None: a measurement only
    check: Check | None = None
    usage: str = ""  # typical arguments


REGISTRY: dict[str, Benchmark] = {}


def register(b: Benchmark) -> Benchmark:
    if b.name in REGISTRY:
        raise ValueError(f"benchmark {b.name!r} registered twice")
    REGISTRY[b.name] = b
    return b


def _pretrain(d: dict) -> tuple[bool, str]:
    return d["speedup"] >= d.get("target_speedup", 2.0), f"{d['speedup']:.2f}x images/s"


def _forwards(d: dict) -> tuple[bool, str]:
    ok = d["forward_ratio"] >= d["blocks"] and d["identical_features"] and d["time_ratio"] >= 0.9 * d["blocks"]
    return ok, (f"{d['forward_ratio']:.1f}x fewer forwards, {d['time_ratio']:.1f}x less time, "
                f"identical features: {d['identical_features']} ({d['blocks']} blocks)")


def _probe_grid(d: dict) -> tuple[bool, str]:
    t, acc = d["targets"], d["test_accuracy"]
    gap = 100 * (acc["grid_probe"] - acc["sklearn_on_its_val_best"])
    ok = d["speedup"] >= t["speedup"] and d["seconds"]["grid_probe"] <= t["grid_seconds"] \
        and gap >= -t["accuracy_gap_points"]
    return ok, f"{d['speedup']:.0f}x faster, grid {d['seconds']['grid_probe']:.0f} s, accuracy {gap:+.1f} points"


def _precision(d: dict) -> tuple[bool, str]:
    worst = min(r["auto_vs_best"] for r in d["rows"])
    return bool(d["auto_within_10pct"]), f"auto / best >= {worst:.2f} on every row"


def _out_of_core(d: dict) -> tuple[bool, str]:
    data_mb = d["extract"]["feature_gb"] * 1024
    anon = {s: d[s]["peak_anon_mb"] for s in ("extract", "probe")}
    return all(v < data_mb for v in anon.values()), \
        f"peak anonymous {anon['extract']} MB extracting, {anon['probe']} MB probing; features {data_mb:.0f} MB"


def _recipe(d: dict) -> tuple[bool, str]:
    fp32 = d["rows"]["fp32"]["recipe_min"]
    return fp32 <= 120, f"{fp32:.0f} min fp32, {d['rows']['bf16']['recipe_min']:.0f} min bf16"


def _predict(d: dict) -> tuple[bool, str]:
    rate = {r["precision"]: r["end_to_end_images_per_s"] for r in d["rows"]}
    unit = d["full_forward_fp32_images_per_s"]
    measured = (", ".join(f"{p} {v:.1f} img/s" for p, v in rate.items())
                + f" ({d['forwards_per_image']} forwards/image; one full fp32 U-Net forward {unit:.1f} img/s)")
    return rate["fp32"] >= 80 and rate["fp32"] >= 0.8 * unit, measured


def _app_init(d: dict) -> tuple[bool, str]:
    return d["seconds_for_25000"] <= 600, (f"{d['n_images']:,} images in {d['seconds']:.0f} s on {d['threads']} "
                                           f"thread(s): 25,000 in {d['seconds_for_25000'] / 60:.1f} min")


def _suite_time(d: dict) -> tuple[bool, str]:
    s = d["suites"]
    ok = all(r["exit_status"] == 0 for r in s.values()) and s["whole"]["seconds"] <= 600 and s["quick"]["seconds"] <= 180
    return ok, ", ".join(f"{name} {r['seconds'] / 60:.1f} min ({r['summary']})" for name, r in s.items())


def _finetune(d: dict) -> tuple[bool, str]:
    return True, ", ".join(f"{p} {v:.1f} img/s" for p, v in d["images_per_s"].items())


def _annotation_timing(d: dict) -> tuple[bool, str]:
    t = d["timing"][0]
    return True, (f"{t['n_objects']:,} objects: grid page {t['grid_page_ms']:.0f} ms, decision {t['decision_ms']:.0f} ms, "
                  f"retrain {t['retrain_s']:.1f} s")


for _b in [
    Benchmark("pretrain_throughput", "pretrain_throughput.py", ("pretrain_throughput.json",),
              "diffprobe's bf16 training step >= 2x the images/s of a plain fp32 diffusers step", _pretrain),
    Benchmark("feature_forwards", "feature_forwards.py", ("feature_forwards.json",),
              "one forward per timestep: >= (number of blocks)x fewer forwards than one per pair, identical "
              "features, time within 10% of the forwards' ratio", _forwards),
    Benchmark("probe_grid", "probe_grid.py", ("probe_grid.json",),
              "GridProbe >= 10x faster than a scikit-learn loop, grid <= 60 s, test accuracy within 1 point",
              _probe_grid, "--store runs/accuracy_per_cpu_hour/*/features/features-*"),
    Benchmark("precision", "precision.py",
              ("precision.json", "precision_avx2_kernels.json", "precision_avx512bf16_kernels.json",
               "precision_epyc_avx512bf16.json"),
              "precision=auto within 10% of the faster of fp32 and bf16, every network and task, every CPU class",
              _precision),
    Benchmark("out_of_core", "out_of_core.py", ("out_of_core.json",),
              "peak anonymous memory of extraction and probing below the feature store's size", _out_of_core,
              "--n 1000000"),
    Benchmark("recipe_timing", "recipe_timing.py", ("recipe_timing.json",),
              "the shipped recipe within 2 CPU-hours (120 min on 2 cores) in fp32", _recipe,
              "--split models/ndsb/split.csv"),
    Benchmark("predict_throughput", "predict_throughput.py", ("predict_throughput.json",),
              "predict end to end >= 80 images/s in fp32 on 2 cores and >= 0.8x one full fp32 U-Net forward "
              "(issue #41)", _predict,
              "--model models/ndsb --images FOLDER_OR_CSV"),
    Benchmark("app_init", "app_init.py", ("app_init.json",),
              "app init on 25,000 images in <= 10 min on 2 cores (issue #41)", _app_init,
              "--images FOLDER --model models/ndsb/s1 --threads 2 --precision fp32 auto"),
    Benchmark("suite_time", "suite_time.py", ("suite_time.json",),
              "the whole test suite <= 10 min and the quick loop (-m 'not slow') <= 3 min on 2 cores, both passing "
              "(issue #40)", _suite_time, "--threads 2"),
    Benchmark("finetune_speed", "finetune_speed.py", ("finetune_speed.json",), None, _finetune,
              "--model PRETRAIN_RUN --split RUN/split.csv"),
    Benchmark("annotation_timing", "annotation.py", ("annotation_timing_25k.json", "annotation_timing_250k.json"),
              None, _annotation_timing, "--timing --sizes 25000 250000"),
    Benchmark("shipped_model", "shipped_model.py", (),
              "accuracy within 0.003 and macro F1 within 0.005 of the model card, all 3,619 test images "
              "(the script exits 1 itself; it writes no result file)", None, "full"),
]:
    register(_b)


def check(b: Benchmark, results: tuple[str, ...] | None = None) -> tuple[str, list[str]]:
    """``(status, lines)``: status is ``met``, ``MISSED``, ``no target`` or ``no result``."""
    files = [RESULTS / r for r in (results or b.results)]
    if not files or b.check is None:
        return "no result", ["no committed result file to check" if not files else "no check"]
    lines, status = [], "met" if b.target else "no target"
    for f in files:
        if not f.is_file():
            lines.append(f"{f.relative_to(HERE.parent)}: missing")
            status = "no result" if status != "MISSED" else status
            continue
        ok, measured = b.check(json.loads(f.read_text()))
        lines.append(f"{f.relative_to(HERE.parent)}: {measured}")
        if b.target and not ok:
            status = "MISSED"
    return status, lines


def list_all() -> None:
    for b in REGISTRY.values():
        print(f"{b.name}\n  run:    python benchmarks/{b.script} {b.usage}".rstrip())
        print(f"  result: {', '.join(f'benchmarks/results/{r}' for r in b.results) or '-'}")
        print(f"  target: {b.target or '- (a measurement only)'}")


def check_all(names: list[str]) -> int:
    missed = 0
    for name in names or list(REGISTRY):
        status, lines = check(REGISTRY[name])
        print(f"{status:>9}  {name}")
        for line in lines:
            print(f"{'':11}{line}")
        missed += status == "MISSED"
    print(f"\n{missed} target(s) missed" if missed else "\nevery target checked is met")
    return 1 if missed else 0


def run_one(name: str, args: list[str]) -> int:
    b = REGISTRY[name]
    rc = subprocess.run([sys.executable, str(HERE / b.script), *args]).returncode
    if rc:
        print(f"{name}: the script exited {rc}")
        return rc
    results = None
    if "--name" in args and len(b.results) == 1:  # a named run writes results/<name>.json
        results = (f"{args[args.index('--name') + 1]}.json",)
    status, lines = check(b, results)
    print(f"\n{status}: {name} ({b.target or 'no target'})", *lines, sep="\n  ")
    return 1 if status == "MISSED" else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 usage="run.py --list | --check [NAME ...] | NAME [ARGS ...]")
    ap.add_argument("--list", action="store_true", help="list the benchmarks, their result files and targets")
    ap.add_argument("--check", nargs="*", metavar="NAME", help="check the committed results against the targets")
    if not argv or argv[0].startswith("-"):
        a = ap.parse_args(argv)
        unknown = [n for n in a.check or [] if n not in REGISTRY]
        if unknown:
            ap.error(f"unknown benchmark(s) {unknown}; --list names them")
        if a.list:
            list_all()
            return 0
        if a.check is not None:
            return check_all(a.check)
        ap.print_help()
        return 2
    if argv[0] not in REGISTRY:
        ap.error(f"unknown benchmark {argv[0]!r}; --list names them")
    return run_one(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())

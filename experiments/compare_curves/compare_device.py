"""One budget of the comparison grid (``diffprobe compare --budgets``) on a GPU machine that cannot read the
image folder: the images travel decoded, every (method, setting) trains in its own process on the shared GPU.

``pack`` (beside the data): makes each setting's split exactly as ``diffprobe compare`` does and decodes its
images once with the comparison's preprocessing, into ``<pack>/<setting>/split.csv`` and one compressed image
cache. ``run`` (on the GPU machine): one process per (method, setting), each the ``diffprobe compare`` command
itself (``--budgets <b> --methods <m> --settings <s>``, the study's options), reading the packed split and
images instead of the folder; each writes its own ``curves.json``. ``diffprobe compare-merge`` then joins
them with the CPU grid.

Only two things are swapped, and only in this script: the split (read from the pack, not made again from a
folder that is not there) and the image cache's key (the manifest's content, not its files' dates and sizes,
which the GPU machine cannot see). Preprocessing, training, features, probes and readouts are the command's own.

    python experiments/compare_curves/compare_device.py pack --data "$DIFFPROBE_DATA/ndsb/images" --pack .devdata
    python experiments/compare_curves/compare_device.py run --pack .devdata --out runs/curves-gpu --budget 256000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from diffprobe.data.manifest import Manifest
from diffprobe.utils import hash_json, write_json

# The study's comparison ([compare] and [fusion] of configs/ndsb.toml), as passed to 'diffprobe compare'.
STUDY_OPTIONS = ["--image-size", "32", "--timesteps", "1,10", "--dino-arch", "vit", "--readout", "--ks", "4,6,8,12",
                 "--metadata-weight", "4.0"]
METHODS = ("ddpm", "supervised", "simclr", "dino", "mae")
SETTINGS = ("natural", "balanced")


def _content_fingerprint(self: Manifest) -> str:
    """The manifest's content alone (the same on both machines)."""
    return hash_json([self.paths, self.labels, self.splits])


def _use_pack(pack: Path) -> None:
    """Point ``diffprobe compare`` at the packed splits and image caches."""
    import diffprobe.workflows.compare as wc  # noqa: PLC0415

    def packed_split(data, out, *, setting, **_):
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".csv", ".json"):
            shutil.copyfile(pack / setting / f"split{suffix}", out.with_suffix(suffix))
        return Manifest.load(out)

    Manifest.fingerprint = _content_fingerprint
    wc.split = packed_split
    os.environ["DIFFPROBE_CACHE"] = str(pack / "cache")


def pack(args) -> None:
    from diffprobe.backbones.ddpm_unet import UNetConfig  # noqa: PLC0415
    from diffprobe.data.dataset import load_split_images  # noqa: PLC0415
    from diffprobe.data.preprocess import Preprocess  # noqa: PLC0415
    from diffprobe.pretrain.ddpm import PretrainConfig  # noqa: PLC0415
    from diffprobe.workflows.pipeline import split  # noqa: PLC0415

    out = Path(args.pack)
    Manifest.fingerprint = _content_fingerprint
    os.environ["DIFFPROBE_CACHE"] = str(out / "build")
    # every method's, as compare checks
    pre = Preprocess.for_training(PretrainConfig(unet=UNetConfig(image_size=args.image_size), invert=True, steps=1))
    for setting in args.settings.split(","):
        m = split(args.data, out / setting / "split.csv", setting=setting)
        load_split_images(m, pre, progress=True)
    cache = out / "cache" / "images"
    cache.mkdir(parents=True, exist_ok=True)
    for f in (out / "build" / "images").glob("images-*.npz"):
        with np.load(f, allow_pickle=False) as z:
            np.savez_compressed(cache / f.name, **{k: z[k] for k in z.files})
    shutil.rmtree(out / "build")
    print(f"packed {args.settings} into {out} ({sum(f.stat().st_size for f in out.rglob('*')) / 1e6:.1f} MB)")


def one(args) -> None:
    _use_pack(Path(args.pack))
    from diffprobe.cli.main import main  # noqa: PLC0415

    sys.exit(main(["compare", "--data", args.pack, "--out", args.out, "--budgets", str(args.budget),
                   "--methods", args.method, "--settings", args.setting, *STUDY_OPTIONS]))


def run(args) -> None:
    """Every (method, setting) at once, one process each, threads shared out; a log per process."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pieces = [(m, s) for s in args.settings.split(",") for m in args.methods.split(",")]
    threads = max(1, (os.cpu_count() or 1) // len(pieces))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs, t0 = {}, time.time()
    for m, s in pieces:
        log = open(out / f"{s}-{m}.log", "w")  # noqa: SIM115 - closed with the process below
        procs[(m, s)] = (subprocess.Popen(
            [sys.executable, __file__, "one", "--pack", args.pack, "--out", str(out / f"{s}-{m}"),
             "--budget", str(args.budget), "--method", m, "--setting", s], stdout=log, stderr=subprocess.STDOUT,
            env=env), log)
    status = {}
    for (m, s), (p, log) in procs.items():
        try:  # pieces still running at the deadline are stopped and reported as unfinished
            rc = p.wait(timeout=max(1.0, args.deadline - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        log.close()
        status[f"{s}/{m}"] = {"returncode": rc, "finished_after_s": round(time.time() - t0, 1)}
        print(f"{s}/{m}: rc {rc} after {time.time() - t0:.0f} s", flush=True)
    import torch  # noqa: PLC0415 - only to name the device

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    write_json(out / "device_run.json", {"budget_images": args.budget, "gpu": gpu, "cpu_cores": os.cpu_count(),
                                         "threads_per_process": threads, "processes": len(pieces),
                                         "pieces": status})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pack")
    s.add_argument("--data", required=True)
    s.add_argument("--pack", required=True)
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--settings", default=",".join(SETTINGS))
    s.set_defaults(fn=pack)
    s = sub.add_parser("run")
    s.add_argument("--pack", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--budget", type=int, required=True)
    s.add_argument("--methods", default=",".join(METHODS))
    s.add_argument("--settings", default=",".join(SETTINGS))
    s.add_argument("--deadline", type=float, default=float("inf"), help="seconds; pieces still running are stopped")
    s.set_defaults(fn=run)
    s = sub.add_parser("one")
    for name in ("--pack", "--out", "--method", "--setting"):
        s.add_argument(name, required=True)
    s.add_argument("--budget", type=int, required=True)
    s.set_defaults(fn=one)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()

"""Out-of-core features: extraction and probing of a large synthetic set (default 1 million images) whose
features do not fit in the memory given to them. The images live in a memory-mapped .npy on disk, the
feature store is memory-mapped, and the probe reads pairs in chunks of --max-gb; each stage runs in its own
process so its peak RSS is its own.

    python benchmarks/out_of_core.py --n 1000000

Measures memory, not accuracy: the images are random blobs with random labels and the probe runs
--epochs 1. Writes benchmarks/results/out_of_core.json and .md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from _common import MemorySampler, peak_rss_mb, run_isolated, write


def make_images(path: Path, n: int, size: int, seed: int = 0, rows: int = 65536) -> None:
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    for start in range(0, n, rows):
        m = min(rows, n - start)
        cy, cx, r = rng.uniform(4, size - 4, (3, m, 1, 1))
        blob = ((yy - cy) ** 2 + (xx - cx) ** 2) < (r / 2 + 2) ** 2
        arr[start:start + m] = (blob * rng.integers(60, 255, (m, 1, 1))).astype(np.uint8)
    arr.flush()


def image_array(work: Path):
    from diffprobe.data import Preprocess
    from diffprobe.data.dataset import ImageArray

    images = np.load(work / "images.npy", mmap_mode="r")
    n = len(images)
    rng = np.random.default_rng(1)
    splits = rng.choice(np.array(["train", "val", "test"]), n, p=[0.7, 0.15, 0.15])
    return ImageArray(images, rng.integers(0, 10, n), [f"c{i}" for i in range(10)], splits,
                      [f"img{i}" for i in range(n)], Preprocess(size=images.shape[-1]))


def stage_extract(work: Path) -> dict:
    from diffprobe.features import FeatureSpec, extract_features

    t0, mem = time.time(), MemorySampler()
    store = extract_features(work / "ddpm", image_array(work), FeatureSpec(timesteps=(1, 50), pooling="grid2"),
                             work / "features", batch_size=1024, progress=False)
    nbytes = sum(f.stat().st_size for f in store.path.glob("*_t*.npy"))
    return {"seconds": round(time.time() - t0, 1), "store": str(store.path), "feature_gb": nbytes / 2**30,
            "pairs": len(store.pairs), "peak_rss_mb": peak_rss_mb(), **mem.stop()}


def stage_probe(work: Path, store: str, max_gb: float) -> dict:
    from diffprobe.probe import GridProbe
    from diffprobe.probe.run import pair_chunks
    from diffprobe.workflows.probe import run_probe

    t0, mem = time.time(), MemorySampler()
    r = run_probe(store, work / "probe", probe=GridProbe(epochs=1, weight_decays=(1e-4,)), bundle=False,
                  max_gb=max_gb)
    from diffprobe.features import FeatureStore

    return {"seconds": round(time.time() - t0, 1), "chunks": len(pair_chunks(FeatureStore(store), max_gb)),
            "best": r["best"]["block"], "peak_rss_mb": peak_rss_mb(), **mem.stop()}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--stage":
        stage, work = sys.argv[2], Path(sys.argv[3])
        out = stage_extract(work) if stage == "extract" else stage_probe(work, sys.argv[4], float(sys.argv[5]))
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--max-gb", type=float, default=0.5, help="the probe's memory budget for features")
    ap.add_argument("--work", default="runs/out_of_core")
    a = ap.parse_args()
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    make_images(work / "images.npy", a.n, a.size)

    from diffprobe.backbones import UNetConfig
    from diffprobe.pretrain import PretrainConfig, pretrain

    images = np.load(work / "images.npy", mmap_mode="r")
    pretrain(np.asarray(images[:256]), work / "ddpm", PretrainConfig(
        unet=UNetConfig(image_size=a.size, channels=(16, 32)), steps=20, batch_size=32, seed=0),
        progress=False, sample=False)
    ext = run_isolated(__file__, "--stage", "extract", str(work))
    prb = run_isolated(__file__, "--stage", "probe", str(work), ext["store"], str(a.max_gb))
    image_gb = a.n * a.size * a.size / 2**30
    res = {"n_images": a.n, "image_size": a.size, "image_gb": image_gb, "extract": ext, "probe": prb,
           "probe_max_gb": a.max_gb, "driver_peak_rss_mb": peak_rss_mb()}
    table = ["| stage | data on disk | peak anonymous memory | peak mapped file pages | peak RSS (both) | time |",
             "|---|---|---|---|---|---|",
             f"| feature extraction ({ext['pairs']} pairs, grid2 pooling) | images {image_gb:.2f} GB -> features "
             f"{ext['feature_gb']:.2f} GB | {ext['peak_anon_mb']} MB | {ext['peak_file_mb']} MB | "
             f"{ext['peak_rss_mb']:.0f} MB | {ext['seconds'] / 60:.1f} min |",
             f"| probing ({prb['chunks']} chunks of <= {a.max_gb} GB) | features {ext['feature_gb']:.2f} GB | "
             f"{prb['peak_anon_mb']} MB | {prb['peak_file_mb']} MB | {prb['peak_rss_mb']:.0f} MB | "
             f"{prb['seconds'] / 60:.1f} min |", "",
             f"{a.n:,} synthetic {a.size} px images (memory-mapped), tiny U-Net (16, 32). Anonymous memory is what "
             "the process holds; mapped file pages are the page cache of the memory-mapped arrays, which the "
             "kernel drops under memory pressure and reads again when needed."]
    write("out_of_core", res, table)
    shutil.rmtree(work / "features", ignore_errors=True)


if __name__ == "__main__":
    main()

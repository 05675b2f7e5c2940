"""How fast a bundle classifies, and how close to the hardware: images/s of ``diffprobe predict``'s code
path end to end (decode + preprocessing + model + head) and of the model alone, in fp32 and bf16, beside
the rate of one full fp32 forward of the same U-Net and the achieved GFLOP/s against the machine's
measured fp32 matmul peak.

A bundle reading T timesteps with V views runs T x V truncated forwards per image; the table names that
count, so a multi-view bundle's cost per image is read as what it is, not hidden in a rate.

    python benchmarks/predict_throughput.py --model models/ndsb --images FOLDER_OR_CSV [--n 512]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import write
from diffprobe.backbones.ddpm_unet import BlockTaps
from diffprobe.evaluate.predict import classify_files, collect_images
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.utils import cpu_features, native_bf16


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def forward_gflop(unet, blocks: list[str] | None, size: int) -> float:
    """GFLOP of one forward per image, full (``blocks`` None) or up to the deepest of ``blocks``."""
    x, t = torch.randn(8, 1, size, size), torch.full((8,), 10, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if blocks:
            with BlockTaps(unet, blocks) as taps:
                taps.run(x, t)
        else:
            unet(x, t)
    return counter.get_total_flops() / 8 / 1e9


def full_forward_rate(unet, images: np.ndarray, batch: int) -> float:
    x = torch.from_numpy(images[:, None].astype(np.float32) / 127.5 - 1)
    t = torch.full((batch,), 10, dtype=torch.long)
    with torch.no_grad():
        unet(x[:batch], t)
        start = time.perf_counter()
        for s in range(0, len(x) - batch + 1, batch):
            unet(x[s:s + batch], t)
    return (len(x) // batch * batch) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a classifier bundle (e.g. models/ndsb)")
    ap.add_argument("--images", required=True, help="folder or manifest of images to classify")
    ap.add_argument("--n", type=int, default=512, help="images timed (default 512)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--name", default="predict_throughput")
    a = ap.parse_args()

    files, _ = collect_images([a.images])
    files = files[: a.n]
    precisions = ["fp32"] + (["bf16"] if native_bf16(torch.device("cpu")) else [])
    rows, forwards = [], None
    for precision in precisions:
        bundle = ClassifierBundle.load(a.model, device=torch.device("cpu"), precision=precision)
        spec = bundle.feature_spec()
        forwards = len(spec.timesteps) * spec.views * spec.n_noise
        classify_files(bundle, files[:32], progress=False)  # warm-up: kernels, allocator
        start = time.perf_counter()
        ok, _, _ = classify_files(bundle, files, batch_size=a.batch_size, progress=False)
        end_to_end = len(ok) / (time.perf_counter() - start)
        images, meta, _, _ = bundle.load_paths(files)
        start = time.perf_counter()
        bundle.logits(images, meta, batch_size=a.batch_size)
        model_only = len(images) / (time.perf_counter() - start)
        rows.append({"precision": precision, "end_to_end_images_per_s": end_to_end,
                     "model_images_per_s": model_only, "forwards_per_image": forwards})
        print(rows[-1], flush=True)

    unet = bundle.backbone.model.float().eval()
    size = bundle.meta["image_size"]
    full_gflop = forward_gflop(unet, None, size)
    read_gflop = forward_gflop(unet, spec.blocks and list(spec.blocks), size)
    full_rate = full_forward_rate(unet, images, min(a.batch_size, len(images)))
    peak = matmul_peak_gflops()
    fp32 = rows[0]
    achieved = fp32["model_images_per_s"] * forwards * read_gflop
    result = {"model": str(Path(a.model)), "n_images": len(files), "cpu_features": cpu_features(), "rows": rows,
              "full_forward_fp32_images_per_s": full_rate, "gflop_full_forward": full_gflop,
              "gflop_per_forward_read": read_gflop, "forwards_per_image": forwards,
              "fp32_matmul_peak_gflops": peak, "fp32_model_achieved_gflops": achieved,
              "end_to_end_fp32_vs_full_forward": fp32["end_to_end_images_per_s"] / full_rate,
              "end_to_end_fp32_per_forward_vs_full_forward": fp32["end_to_end_images_per_s"] * forwards / full_rate,
              "hours_per_million_images_fp32": 1e6 / fp32["end_to_end_images_per_s"] / 3600}
    table = [f"Bundle `{a.model}`: {forwards} truncated forward(s) per image ({read_gflop:.2f} GFLOP each; the full "
             f"forward is {full_gflop:.2f}); {len(files)} images; fp32 matmul peak {peak:.0f} GFLOP/s, the fp32 model "
             f"reaches {achieved:.0f} GFLOP/s ({achieved / peak:.0%}).", "",
             "| precision | predict end to end (img/s) | model alone (img/s) | forwards / image | "
             "end to end vs one full fp32 forward |", "|---|---|---|---|---|"]
    table += [f"| {r['precision']} | {r['end_to_end_images_per_s']:.1f} | {r['model_images_per_s']:.1f} | "
              f"{r['forwards_per_image']} | {r['end_to_end_images_per_s'] / full_rate:.2f}x |" for r in rows]
    table += ["", f"One full fp32 forward: {full_rate:.1f} img/s. A million images in fp32: "
                  f"{result['hours_per_million_images_fp32']:.1f} h on this machine."]
    write(a.name, result, table)


if __name__ == "__main__":
    main()

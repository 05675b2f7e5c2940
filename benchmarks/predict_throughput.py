"""How fast a bundle classifies, and how close to the hardware: images/s of ``diffprobe predict``'s code
path end to end (decode + preprocessing + model + head) and of the model alone, in fp32 and bf16, beside
the rate of one full fp32 forward of the same U-Net and the achieved GFLOP/s against the machine's
measured fp32 matmul peak.

A bundle reading T timesteps with V views runs T x V truncated forwards per image; the table names that
count, so a multi-view bundle's cost per image is read as what it is, not hidden in a rate. Several bundles are
timed in one run (``--model`` repeated: the shipped one first), against one unit: a full fp32 forward of the
diffusion U-Net (``--unit``, default the first bundle that reads one).

    python benchmarks/predict_throughput.py --model models/ndsb --images FOLDER_OR_CSV [--n 512]
    python benchmarks/predict_throughput.py --model models/ndsb --model models/ndsb-diffusion --images FOLDER_OR_CSV
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from _common import write
from diffprobe.backbones.ddpm_unet import BlockTaps, DDPMBackbone
from diffprobe.evaluate.predict import classify_files
from diffprobe.probe.bundle import ClassifierBundle
from diffprobe.probe.ensemble import ReadingEnsemble, load_bundle
from diffprobe.utils import cpu_features, native_bf16
from diffprobe.workflows.predict import collect_images


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


def model_gflop(bundle) -> float:
    """GFLOP of the forwards a bundle runs per image (every view and timestep, up to its deepest block; an ensemble:
    every member's)."""
    if isinstance(bundle, ReadingEnsemble):
        return sum(model_gflop(m) for m in bundle.members)
    spec, size = bundle.feature_spec(), bundle.meta["image_size"]
    model = bundle.backbone.model.float().eval()
    if isinstance(bundle.backbone, DDPMBackbone):
        return forward_gflop(model, spec.blocks and list(spec.blocks), size) * bundle_forwards(bundle)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        bundle.backbone.features_batch(np.zeros((8, size, size), np.uint8), replace(spec, views=1))
    return counter.get_total_flops() / 8 / 1e9 * bundle_forwards(bundle)


def bundle_forwards(bundle) -> int:
    if isinstance(bundle, ReadingEnsemble):
        return sum(bundle_forwards(m) for m in bundle.members)
    spec = bundle.feature_spec()
    return len(spec.timesteps) * spec.views * spec.n_noise


def time_bundle(path: str, files: list, batch_size: int,
                views: int | None = None) -> tuple[list[dict], "ClassifierBundle", np.ndarray]:
    """predict's code path end to end and the model alone, in fp32 and (where native) bf16; ``views``: read in that
    many views instead of the bundle's own (``predict --views``)."""
    # "auto" is what a user gets with no flag: timed beside both where the CPU has a choice to make.
    precisions = ["fp32"] + (["bf16", "auto"] if native_bf16(torch.device("cpu")) else [])
    rows = []
    for precision in precisions:
        bundle = load_bundle(path, device=torch.device("cpu"), precision=precision, views=views)
        classify_files(bundle, files[:32], progress=False)  # warm-up: kernels, allocator
        start = time.perf_counter()
        ok, _, _ = classify_files(bundle, files, batch_size=batch_size, progress=False)
        end_to_end = len(ok) / (time.perf_counter() - start)
        images, meta, _, _ = bundle.load_paths(files)
        start = time.perf_counter()
        bundle.logits(images, meta, batch_size=batch_size)
        model_only = len(images) / (time.perf_counter() - start)
        rows.append({"precision": precision, "end_to_end_images_per_s": end_to_end,
                     "model_images_per_s": model_only, "forwards_per_image": bundle_forwards(bundle)})
        print(path, rows[-1], flush=True)
    return rows, bundle, images


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, action="append",
                    help="a classifier bundle (e.g. models/ndsb); repeat it to time several in the same run: the "
                         "first is the one the target is checked on")
    ap.add_argument("--unit", help="a bundle whose U-Net gives the unit, one full fp32 forward (default: the first "
                                   "--model that reads a U-Net)")
    ap.add_argument("--also-views", type=int, help="time the first bundle read in this many views too (--views)")
    ap.add_argument("--images", required=True, help="folder or manifest of images to classify")
    ap.add_argument("--n", type=int, default=512, help="images timed (default 512)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--name", default="predict_throughput")
    a = ap.parse_args()

    files, _ = collect_images([a.images])
    files = files[: a.n]
    models, images, unit_bundle = {}, None, None
    readers = [(path, None) for path in a.model] + ([(a.model[0], a.also_views)] if a.also_views else [])
    for path, views in readers:
        rows, bundle, images = time_bundle(path, files, a.batch_size, views)
        models[path if views is None else f"{path} --views {views}"] = {"rows": rows, "forwards_per_image": rows[0]["forwards_per_image"],
                        "backbone": type(bundle.backbone).__name__, "gflop_per_image": model_gflop(bundle)}
        if unit_bundle is None and (a.unit == path or not a.unit and isinstance(bundle.backbone, DDPMBackbone)):
            unit_bundle = bundle
    if unit_bundle is None:
        unit_bundle = ClassifierBundle.load(a.unit, device=torch.device("cpu"), precision="fp32")
    unet = unit_bundle.backbone.model.float().eval()
    size = unit_bundle.meta["image_size"]
    full_gflop = forward_gflop(unet, None, size)
    full_rate = full_forward_rate(unet, images, min(a.batch_size, len(images)))
    peak = matmul_peak_gflops()
    first = models[a.model[0]]
    fp32 = first["rows"][0]
    result = {"model": str(Path(a.model[0])), "n_images": len(files), "cpu_features": cpu_features(),
              "threads": torch.get_num_threads(),
              "rows": first["rows"], "forwards_per_image": first["forwards_per_image"], "models": models,
              "unit": str(Path(a.unit or unit_bundle.path)),
              "full_forward_fp32_images_per_s": full_rate, "gflop_full_forward": full_gflop,
              "fp32_matmul_peak_gflops": peak,
              "end_to_end_fp32_vs_full_forward": fp32["end_to_end_images_per_s"] / full_rate,
              "hours_per_million_images_fp32": 1e6 / fp32["end_to_end_images_per_s"] / 3600}
    table = [f"{len(files)} images; the unit: one full fp32 forward of the U-Net of `{result['unit']}` "
             f"({full_gflop:.2f} GFLOP), {full_rate:.1f} img/s; fp32 matmul peak {peak:.0f} GFLOP/s.", "",
             "| bundle | backbone | forwards / image | GFLOP / image | precision | predict end to end (img/s) | "
             "model alone (img/s) | end to end vs the unit |", "|---|---|---|---|---|---|---|---|"]
    for path, m in models.items():
        table += [f"| `{path}` | {m['backbone']} | {m['forwards_per_image']} | {m['gflop_per_image']:.2f} | "
                  f"{r['precision']} | {r['end_to_end_images_per_s']:.1f} | {r['model_images_per_s']:.1f} | "
                  f"{r['end_to_end_images_per_s'] / full_rate:.2f}x |" for r in m["rows"]]
    table += ["", f"A million images in fp32 with `{a.model[0]}`: {result['hours_per_million_images_fp32']:.1f} h "
                  f"on this machine."]
    write(a.name, result, table)


if __name__ == "__main__":
    main()

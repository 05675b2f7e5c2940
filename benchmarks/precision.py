"""What each numeric precision costs on this machine: the training step and the forward that reads features, in
fp32, bf16 and ``auto`` (what ``utils.resolve_precision`` picks here), for the default U-Net, the demo's and the
shipped model's plain CNN (64 px, stem stride 2).

``auto`` should be within 10% of the faster of fp32 and bf16 on every machine; the JSON names the CPU, its
capability as PyTorch sees it (AVX2, AVX512, ...), whether it has AMX and whether oneDNN may use it.

    python benchmarks/precision.py [--steps 6] [--batch 32]

Other CPU classes can be imitated on an AMX machine by holding the kernels below it (the convolutions and
matmuls are oneDNN's): ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` (an AVX2-only CPU) or
``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` (AVX512_BF16 without AMX); ``--name`` keeps each result apart. Same
instructions, not the same chip (clock, caches): an imitation, said so in the result.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from _common import write
from diffprobe.backbones import UNetConfig, build_unet
from diffprobe.backbones.baselines import build_arch
from diffprobe.config.backbones import ConvNetConfig
from diffprobe.backbones.ddpm_unet import unet_features
from diffprobe.features import FeatureSpec
from diffprobe.utils import autocast, cpu_features, resolve_precision

CPU = torch.device("cpu")
UNETS = {"default (64,128,128)": (64, 128, 128), "demo (32,64,64)": (32, 64, 64)}
CNN = ConvNetConfig(image_size=64, stem_stride=2)  # the shipped model's network
CNN_NAME = "plain CNN 64 px (stem stride 2)"


def train_rate(channels, precision: str, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    unet = build_unet(UNetConfig(image_size=32, channels=channels))
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x, t = torch.randn(batch, 1, 32, 32), torch.randint(0, 1000, (batch,))

    def step():
        with autocast(CPU, precision):
            loss = F.mse_loss(unet(x, t).sample.float(), x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, oneDNN kernel choice
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def feature_rate(channels, precision: str, n: int = 256) -> float:
    torch.manual_seed(0)
    unet = build_unet(UNetConfig(image_size=32, channels=channels)).eval()
    images = np.random.default_rng(0).integers(0, 255, (n, 32, 32), dtype=np.uint8)
    spec = FeatureSpec(timesteps=(1,), precision=precision)
    unet_features(unet, images[:32], spec)
    start = time.perf_counter()
    unet_features(unet, images, spec)
    return n / (time.perf_counter() - start)


def cnn_train_rate(precision: str, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = build_arch(CNN, num_classes=121)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, CNN.image_size, CNN.image_size), torch.randint(0, 121, (batch,))

    def step():
        with autocast(CPU, precision):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def cnn_feature_rate(precision: str, n: int = 1024, batch: int = 256) -> float:
    torch.manual_seed(0)
    model = build_arch(CNN).eval()
    x = torch.randn(n, 1, CNN.image_size, CNN.image_size)
    with torch.no_grad(), autocast(CPU, precision):
        model(x[:batch])
        start = time.perf_counter()
        for s in range(0, n, batch):
            model(x[s:s + batch])
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--name", default="precision")
    a = ap.parse_args()
    auto = resolve_precision("auto", CPU)
    rows = []
    tasks = [(name, task, fn) for name, ch in UNETS.items()
             for task, fn in (("training step", lambda p, ch=ch: train_rate(ch, p, a.batch, a.steps)),
                              ("feature extraction", lambda p, ch=ch: feature_rate(ch, p)))]
    tasks += [(CNN_NAME, "training step", lambda p: cnn_train_rate(p, 4 * a.batch, a.steps)),
              (CNN_NAME, "feature extraction", cnn_feature_rate)]
    for name, task, fn in tasks:
        r = {p: fn(p) for p in ("fp32", "bf16")}
        r["auto"] = fn("auto")
        best = max(r["fp32"], r["bf16"])
        rows.append({"network": name, "task": task, "images_per_s": r, "auto_picks": auto,
                     "auto_vs_best": r["auto"] / best, "bf16_vs_fp32": r["bf16"] / r["fp32"]})
        print(rows[-1], flush=True)
    cpu = cpu_features()
    limits = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)}
    held = f"; kernels held back: {', '.join(f'{k}={v}' for k, v in limits.items())}" if limits else ""
    write(a.name, {"cpu_features": cpu, "kernel_limits": limits, "batch": a.batch, "rows": rows,
                   "auto_within_10pct": all(r["auto_vs_best"] >= 0.9 for r in rows)},
          [f"CPU capability {cpu['capability']}, AMX {cpu['amx']}, AVX512_BF16 {cpu['avx512_bf16']}{held}; auto "
           f"picks {auto}", "", "| network | task | fp32 img/s | bf16 img/s | auto img/s | bf16 / fp32 | auto / best |",
           "|---|---|---|---|---|---|---|"]
          + [f"| {r['network']} | {r['task']} | {r['images_per_s']['fp32']:.1f} | {r['images_per_s']['bf16']:.1f} | "
             f"{r['images_per_s']['auto']:.1f} | {r['bf16_vs_fp32']:.2f}x | {r['auto_vs_best']:.2f} |" for r in rows])


if __name__ == "__main__":
    main()

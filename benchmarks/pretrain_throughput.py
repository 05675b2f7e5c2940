"""Pretraining throughput: diffprobe's training step (bf16 autocast, fp32 master weights) against a plain
fp32 diffusers training step on the same U-Net, same batch; plus achieved FLOP/s against the machine's
measured bf16 matmul peak.

    python benchmarks/pretrain_throughput.py [--image-size 32] [--channels 64,128,128] [--batch 64] [--steps 8]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from _common import MemorySampler, write
from diffprobe.backbones import UNetConfig, build_unet
from diffprobe.utils import autocast


def step_fn(unet, opt, x, t, eps, bf16: bool):
    with autocast(torch.device("cpu"), "bf16" if bf16 else "fp32"):
        pred = unet(x, t).sample
    loss = F.mse_loss(pred.float(), eps)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def images_per_s(cfg: UNetConfig, batch: int, steps: int, bf16: bool) -> tuple[float, int]:
    """(images/s, peak anonymous memory in MB while this variant ran)."""
    mem = MemorySampler()
    torch.manual_seed(0)
    unet = build_unet(cfg)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, cfg.image_size, cfg.image_size)
    t = torch.randint(0, 1000, (batch,))
    for _ in range(2):  # warm-up: allocator, oneDNN kernel selection
        step_fn(unet, opt, x, t, x, bf16)
    start = time.perf_counter()
    for _ in range(steps):
        step_fn(unet, opt, x, t, x, bf16)
    return batch * steps / (time.perf_counter() - start), mem.stop()["peak_anon_mb"]


def flops_per_image(cfg: UNetConfig, batch: int) -> float:
    unet = build_unet(cfg)
    x = torch.randn(batch, 1, cfg.image_size, cfg.image_size)
    with FlopCounterMode(display=False) as fc:
        unet(x, torch.zeros(batch, dtype=torch.long)).sample.sum().backward()
    return fc.get_total_flops() / batch


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--channels", default="64,128,128")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=8)
    a = p.parse_args()
    cfg = UNetConfig(image_size=a.image_size, channels=tuple(int(c) for c in a.channels.split(",")))
    fp32, mem_fp32 = images_per_s(cfg, a.batch, a.steps, bf16=False)
    bf16, mem_bf16 = images_per_s(cfg, a.batch, a.steps, bf16=True)
    fpi = flops_per_image(cfg, a.batch)
    peak_bf16, peak_fp32 = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    res = {"config": cfg.to_dict(), "batch": a.batch, "images_per_s": {"fp32_plain": fp32, "diffprobe_bf16": bf16},
           "speedup": bf16 / fp32, "target_speedup": 2.0, "train_flops_per_image": fpi,
           "achieved_tflops_bf16": bf16 * fpi / 1e12, "matmul_peak_tflops": {"bf16": peak_bf16 / 1e12,
                                                                            "fp32": peak_fp32 / 1e12},
           "fraction_of_bf16_peak": bf16 * fpi / peak_bf16,
           "peak_anon_mb": {"fp32_plain": mem_fp32, "diffprobe_bf16": mem_bf16}}
    table = ["| variant | images/s | achieved TFLOP/s | peak memory |", "|---|---|---|---|",
             f"| plain fp32 diffusers step | {fp32:.1f} | {fp32 * fpi / 1e12:.3f} | {mem_fp32} MB |",
             f"| diffprobe step (bf16 autocast) | {bf16:.1f} | {bf16 * fpi / 1e12:.3f} | {mem_bf16} MB |",
             "", f"speed-up {bf16 / fp32:.2f}x (target 2x); bf16 matmul peak {peak_bf16 / 1e12:.2f} TFLOP/s, "
             f"fp32 {peak_fp32 / 1e12:.2f}; the bf16 step reaches {100 * bf16 * fpi / peak_bf16:.0f}% of the bf16 peak."]
    write("pretrain_throughput", res, table)


if __name__ == "__main__":
    main()

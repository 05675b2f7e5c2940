"""Feature extraction over a full grid: diffprobe's one forward pass per timestep (hooks on every block)
against one forward pass per (block, timestep) pair. Counts forward passes and wall time.

    python benchmarks/feature_forwards.py [--images 512] [--timesteps 1,10,25,50,100,200,400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _common import MemorySampler, write
from diffprobe.backbones import UNetConfig, build_unet
from diffprobe.backbones.ddpm_unet import unet_features
from diffprobe.features import FeatureSpec


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--timesteps", default="1,10,25,50,100,200,400")
    p.add_argument("--channels", default="64,128,128")
    a = p.parse_args()
    cfg = UNetConfig(image_size=32, channels=tuple(int(c) for c in a.channels.split(",")))
    torch.manual_seed(0)
    unet = build_unet(cfg).eval()
    calls = []
    unet.register_forward_hook(lambda *_: calls.append(1))
    images = np.random.default_rng(0).integers(0, 255, (a.images, 32, 32), dtype=np.uint8)
    ts = tuple(int(t) for t in a.timesteps.split(","))
    blocks = [f"down{i}" for i in range(len(cfg.channels))] + ["mid"] + [f"up{i}" for i in range(len(cfg.channels))]

    def run(per_pair: bool):
        calls.clear()
        mem = MemorySampler()
        start = time.perf_counter()
        out = {}
        for s in range(0, a.images, 256):
            batch = images[s : s + 256]
            if per_pair:
                for b in blocks:
                    for t in ts:
                        out.setdefault((b, t), []).append(
                            unet_features(unet, batch, FeatureSpec(timesteps=(t,), blocks=(b,)))[(b, t)])
            else:
                for k, v in unet_features(unet, batch, FeatureSpec(timesteps=ts)).items():
                    out.setdefault(k, []).append(v)
        seconds, peak = time.perf_counter() - start, mem.stop()["peak_anon_mb"]
        return seconds, len(calls), {k: np.concatenate(v) for k, v in out.items()}, peak

    t_grid, n_grid, f_grid, m_grid = run(per_pair=False)
    t_pair, n_pair, f_pair, m_pair = run(per_pair=True)
    same = all(np.allclose(f_grid[k], f_pair[k], atol=1e-4) for k in f_grid)
    res = {"images": a.images, "blocks": len(blocks), "timesteps": list(ts), "pairs": len(blocks) * len(ts),
           "forwards": {"one_per_timestep": n_grid, "one_per_pair": n_pair}, "forward_ratio": n_pair / n_grid,
           "seconds": {"one_per_timestep": t_grid, "one_per_pair": t_pair}, "time_ratio": t_pair / t_grid,
           "target_ratio": len(blocks), "identical_features": same,
           "peak_anon_mb": {"one_per_timestep": m_grid, "one_per_pair": m_pair}}
    table = ["| variant | forward passes | seconds | peak memory |", "|---|---|---|---|",
             f"| one forward per timestep (diffprobe) | {n_grid} | {t_grid:.1f} | {m_grid} MB |",
             f"| one forward per (block, timestep) | {n_pair} | {t_pair:.1f} | {m_pair} MB |", "",
             f"{n_pair / n_grid:.1f}x fewer forwards, {t_pair / t_grid:.1f}x less time (target: {len(blocks)}x, the "
             f"number of blocks); identical features: {same}."]
    write("feature_forwards", res, table)


if __name__ == "__main__":
    main()

"""Frozen-denoiser features at every (block, timestep) pair.

For an image x0 and a timestep t: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, one forward
pass of the frozen U-Net, and every tapped block's activation map is pooled into a vector.
**One forward pass per (timestep, noise draw) yields all blocks.**

The noise of an image is drawn from a seed derived from the image's own pixels and the
global seed, so an image gets the same features whichever dataset, batch or order it
comes in (training, evaluation, or ``predict`` on a new folder).
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.ddpm_unet import BlockTaps, block_names, make_scheduler
from ..data.dataset import to_model_input
from ..utils import DiffprobeError, autocast

POOLINGS = ("avg", "max", "avgmax", "grid2")


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to read. Saved with every feature store and classifier bundle.

    timesteps: DDPM timesteps (0..999); small-to-moderate noise is usually best.
    blocks:    block names (``down0..``, ``mid``, ``up0..``); empty = every block.
    pooling:   avg (global average, default) | max | avgmax (both, concatenated) | grid2 (2x2 average grid).
    n_noise:   average features over this many noise draws (noise ensemble).
    seed:      global seed mixed into each image's noise seed.
    bf16:      bf16 autocast for the forward pass (AMX on CPU, tensor cores on GPU).
    """

    timesteps: tuple[int, ...] = (1, 10, 25, 50, 100, 200, 400)
    blocks: tuple[str, ...] = ()
    pooling: str = "avg"
    n_noise: int = 1
    seed: int = 0
    bf16: bool = True

    def __post_init__(self):
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not self.timesteps or any(not 0 <= t < 1000 for t in self.timesteps):
            raise DiffprobeError(f"timesteps must be between 0 and 999, got {list(self.timesteps)}")
        if self.pooling not in POOLINGS:
            raise DiffprobeError(f"unknown pooling {self.pooling!r}; choose one of {POOLINGS}")
        if not isinstance(self.n_noise, int) or self.n_noise < 1:
            raise DiffprobeError(f"n_noise must be a positive integer, got {self.n_noise!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timesteps"], d["blocks"] = list(self.timesteps), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        return cls(**d)


def pool(fmap: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, D): D = C (avg, max), 2C (avgmax), 4C (grid2)."""
    if how == "avg":
        return fmap.mean(dim=(2, 3))
    if how == "max":
        return fmap.amax(dim=(2, 3))
    if how == "avgmax":
        return torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3))], dim=1)
    if how == "grid2":
        return F.adaptive_avg_pool2d(fmap, 2).flatten(1)
    raise DiffprobeError(f"unknown pooling {how!r}; choose one of {POOLINGS}")


def image_seeds(images: np.ndarray, seed: int) -> list[int]:
    """A noise seed per image from its pixels: the same image always gets the same noise."""
    return [zlib.crc32(np.ascontiguousarray(im).tobytes(), seed & 0xFFFFFFFF) & 0x7FFFFFFF for im in images]


def draw_noise(images: np.ndarray, spec: FeatureSpec) -> torch.Tensor:
    """(B, T, K, 1, S, S) standard normal noise, one fixed draw per (image, timestep, noise index)."""
    s = images.shape[-1]
    shape = (len(spec.timesteps), spec.n_noise, 1, s, s)
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(sd))
                        for sd in image_seeds(images, spec.seed)])


def resolve_blocks(unet, spec: FeatureSpec) -> list[str]:
    return list(spec.blocks) if spec.blocks else block_names(unet)


@torch.no_grad()
def features_batch(unet, images: np.ndarray, spec: FeatureSpec) -> dict[tuple[str, int], np.ndarray]:
    """Pooled features of a batch of uint8 images (B, S, S) at every (block, timestep) of ``spec``.

    Returns {(block, t): float32 array (B, D_block)}. Runs len(timesteps) * n_noise forward passes.
    """
    device = next(unet.parameters()).device
    blocks = resolve_blocks(unet, spec)
    alphas = make_scheduler().alphas_cumprod
    x0 = to_model_input(images).to(device)
    noise = draw_noise(images, spec).to(device)
    out: dict[tuple[str, int], torch.Tensor] = {}
    with BlockTaps(unet, blocks) as taps:
        for ti, t in enumerate(spec.timesteps):
            a = alphas[t].item()
            for k in range(spec.n_noise):
                xt = a**0.5 * x0 + (1 - a) ** 0.5 * noise[:, ti, k]
                tt = torch.full((len(x0),), t, device=device, dtype=torch.long)
                with autocast(device, enabled=spec.bf16):
                    unet(xt, tt)
                for b in blocks:
                    v = pool(taps.outputs[b].float(), spec.pooling)
                    out[(b, t)] = v if k == 0 else out[(b, t)] + v
    return {key: (v / spec.n_noise).cpu().numpy() for key, v in out.items()}

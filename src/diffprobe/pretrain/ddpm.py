"""Pretrain a DDPM U-Net denoiser on unlabelled images (epsilon prediction, 1000 steps, linear betas).

Runs in the shared loop (``loop.train``: Hugging Face Accelerate on a CPU, one GPU or many,
bf16 autocast where native, fp32 master weights, EMA, atomic checkpoints). Randomness (batch order,
augmentation, timesteps, noise) is a pure function of (seed, step), so ``--resume`` continues
exactly as an uninterrupted run would.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDIMScheduler

from ..backbones.base import write_backbone_json
from ..backbones.ddpm_unet import build_unet, make_scheduler, unet_image_size
from ..config.pretrain import PretrainConfig  # noqa: F401 - defined without torch, re-exported
from ..data.dataset import ImageArray, to_model_input
from ..data.preprocess import Preprocess
from ..report.plots import image_grid
from ..utils import write_json
from .loop import TrainTask, square_images, train


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and rotation by k * 90 degrees, per image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    k = torch.randint(0, 4, (n,), generator=gen)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    out = x.clone()
    for r in (1, 2, 3):
        m = k == r
        if m.any():
            out[m] = torch.rot90(x[m], r, dims=(-2, -1))
    return out


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then constant: a function of the step alone, so resuming needs no scheduler state."""
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def save_pipeline_dir(out: Path, unet, cfg: PretrainConfig) -> None:
    """The frozen model in diffusers format, with preprocessing and scheduler beside it."""
    unet.save_pretrained(out / "unet", safe_serialization=True)
    write_backbone_json(out, "ddpm_unet", unet=cfg.unet.to_dict())
    make_scheduler().save_pretrained(out / "scheduler")
    write_json(out / "preprocess.json", Preprocess.for_training(cfg).to_dict())


@torch.no_grad()
def sample_grid(unet, path: Path, *, n: int = 16, steps: int = 50, seed: int = 0, invert: bool = True) -> Path:
    """Draw ``n`` images with DDIM (``steps`` steps) and save them as a PNG grid."""
    sched = DDIMScheduler.from_config(make_scheduler().config)
    sched.set_timesteps(steps)
    device = next(unet.parameters()).device
    size = unet_image_size(unet)
    x = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    for t in sched.timesteps:
        eps = unet(x, t).sample
        x = sched.step(eps, t, x).prev_sample
    imgs = list(((x.clamp(-1, 1) + 1) / 2).squeeze(1).cpu().numpy())
    if invert:
        imgs = [1 - im for im in imgs]
    cols = int(math.ceil(math.sqrt(n)))
    image_grid([imgs[i : i + cols] for i in range(0, n, cols)], path, title=f"DDPM samples (DDIM, {steps} steps)")
    return path


class DDPMTask(TrainTask):
    """Epsilon prediction on noised images (``make_scheduler``'s forward process) for ``loop.train``;
    the RC-DiT task extends it, so both denoisers draw a step's inputs the same way."""

    desc = "pretrain"
    resume_keys = ("unet", "seed", "batch_size", "invert", "flatfield")

    def __init__(self, data: np.ndarray, cfg: PretrainConfig, *, sample: bool = True):
        self.cfg, self.sample, self.n_images = cfg, sample, len(data)
        self.steps, self.minutes, self.ema_decay = cfg.steps, cfg.minutes, cfg.ema_decay
        self.x = to_model_input(data)
        self.alphas = make_scheduler().alphas_cumprod

    def build_model(self):
        return build_unet(self.cfg.unet)

    def lr_schedule(self, optimizer):
        def set_lr(step: int) -> None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, self.cfg)
        return set_lr

    def batch(self, model, idx, gen):
        x0 = self.x[idx]
        if self.cfg.augment:
            x0 = augment_batch(x0, gen)
        t = torch.randint(0, len(self.alphas), (len(idx),), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        return {"x0": x0, "t": t, "eps": eps, "alpha": self.alphas[t]}

    @staticmethod
    def noised(batch: dict) -> torch.Tensor:
        """x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps, (B, 1, S, S)."""
        a = batch["alpha"].view(-1, 1, 1, 1)
        return a.sqrt() * batch["x0"] + (1 - a).sqrt() * batch["eps"]

    def loss(self, model, batch):
        pred = model(self.noised(batch), batch["t"]).sample
        return F.mse_loss(pred.float(), batch["eps"])

    def export(self, model, out, device):
        save_pipeline_dir(out, model, self.cfg)
        if self.sample:
            sample_grid(model.to(device).eval(), out / "samples.png", seed=self.cfg.seed, invert=self.cfg.invert)
        return {"params": sum(p.numel() for p in model.parameters())}


def pretrain(images: ImageArray | np.ndarray, out_dir: str | Path, cfg: PretrainConfig, *, resume: bool = False,
             progress: bool = True, sample: bool = True, accelerator: Accelerator | None = None) -> Path:
    """Train a DDPM U-Net on ``images`` (uint8 N x S x S; labels are never used).

    Writes to ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``,
    ``unet/`` + ``scheduler/`` + ``preprocess.json`` (EMA weights, diffusers format),
    ``samples.png`` and ``summary.json``. Returns ``out_dir``.
    """
    data = square_images(images.images if isinstance(images, ImageArray) else images, cfg.unet.image_size,
                         cfg.batch_size, "U-Net")
    return train(DDPMTask(data, cfg, sample=sample), out_dir, resume=resume, progress=progress,
                 accelerator=accelerator)

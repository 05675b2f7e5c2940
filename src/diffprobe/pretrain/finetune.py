"""Fine-tuning the pretrained U-Net with labels: a comparison row for the frozen recipe, not the paper's protocol.

The frozen recipe reads the U-Net's pooled block activations at a small timestep and fits a head on them. Here
the same readout (every tapped block, average and max pooled, at one timestep; the objects' size metadata; a
one-hidden-layer head) is trained end to end together with the U-Net's weights, on random flips and quarter
turns of the train images, through the shared training loop (``loop.train``: Accelerate, atomic checkpoints,
``--resume``, a step or wall-clock budget). It answers one question at equal compute: do labels flowing into the
denoiser beat a probe on its frozen features?

Shapes: images uint8 (N, S, S); metadata float32 (N, M); labels int (N,).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model

from ..backbones.ddpm_unet import BlockTaps, load_unet, make_scheduler
from ..config.pretrain import FinetuneConfig
from ..data.dataset import to_model_input
from ..data.preprocess import dihedral
from ..utils import DiffprobeError, autocast, read_json, write_json
from .loop import TrainTask, train

WEIGHTS = "finetuned.safetensors"
ALPHAS_CUMPROD = make_scheduler().alphas_cumprod


class FinetunedUNet(torch.nn.Module):
    """The U-Net up to its deepest tapped block, its blocks' average and max pooled activations at ``timestep``
    and the standardised metadata concatenated, then LayerNorm -> Linear -> GELU -> Dropout -> Linear."""

    def __init__(self, unet, blocks: tuple[str, ...], timestep: int, meta_mean: np.ndarray, meta_std: np.ndarray,
                 n_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.unet, self.blocks, self.timestep = unet, tuple(blocks), int(timestep)
        self.register_buffer("meta_mean", torch.as_tensor(meta_mean, dtype=torch.float32))
        self.register_buffer("meta_std", torch.as_tensor(meta_std, dtype=torch.float32))
        size = unet.config.sample_size
        with torch.no_grad(), BlockTaps(unet, list(self.blocks)) as taps:
            taps.run(torch.zeros(1, 1, size, size), torch.zeros(1, dtype=torch.long))
            width = sum(2 * taps.outputs[b].shape[1] for b in self.blocks) + len(meta_mean)
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, hidden), torch.nn.GELU(),
                                        torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_classes))

    def forward(self, noisy: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        """noisy (B, 1, S, S) images at ``timestep``; meta (B, M) -> logits (B, C)."""
        t = torch.full((len(noisy),), self.timestep, device=noisy.device, dtype=torch.long)
        with BlockTaps(self.unet, list(self.blocks)) as taps:
            outputs = taps.run(noisy, t)
        pooled = [p for b in self.blocks for p in (outputs[b].mean((2, 3)), outputs[b].amax((2, 3)))]
        z = torch.cat([p.float() for p in pooled] + [(meta - self.meta_mean) / self.meta_std], 1)
        return self.head(z)


def _noisy(x: torch.Tensor, timestep: int, noise: torch.Tensor) -> torch.Tensor:
    """x (B, 1, S, S) in [-1, 1] noised to ``timestep`` (the DDPM schedule the U-Net was trained with)."""
    a = ALPHAS_CUMPROD[timestep].item()
    return a**0.5 * x + (1 - a) ** 0.5 * noise


class FinetuneTask(TrainTask):
    """Cross-entropy on one random view (of the 8 flips / quarter turns) of each image, fresh noise at the
    timestep; AdamW with linear warm-up and cosine decay; the trained weights are exported (no EMA)."""

    desc = "fine-tune"

    def __init__(self, cfg: FinetuneConfig, images: np.ndarray, meta: np.ndarray, labels: np.ndarray,
                 n_classes: int):
        if len(images) != len(labels) or len(meta) != len(labels) or (np.asarray(labels) < 0).any():
            raise DiffprobeError("fine-tuning needs one label and one metadata row for every train image")
        self.cfg, self.n_classes = cfg, n_classes
        self.x, self.meta = torch.from_numpy(np.asarray(images)), torch.from_numpy(np.asarray(meta, np.float32))
        self.y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.n_images, self.steps = len(images), cfg.steps
        self.meta_mean, self.meta_std = self.meta.mean(0).numpy(), self.meta.std(0).numpy() + 1e-6
        self.resume_keys = tuple(k for k in cfg.to_dict() if k not in ("checkpoint_every", "precision"))

    def build_model(self):
        cfg = self.cfg
        return FinetunedUNet(load_unet(cfg.model_dir), cfg.blocks, cfg.timestep, self.meta_mean, self.meta_std,
                             self.n_classes, cfg.hidden, cfg.dropout)

    def lr_schedule(self, optimizer):
        cfg = self.cfg

        def set_lr(step: int) -> None:
            warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
            cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, step / cfg.steps)))
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * warm * cosine
        return set_lr

    def batch(self, model, idx, gen):
        views = torch.randint(0, 8, (len(idx),), generator=gen)
        x = torch.stack([torch.from_numpy(dihedral(self.x[i : i + 1].numpy(), int(v))[0])
                         for i, v in zip(idx.tolist(), views)])
        noise = torch.randn((len(idx), 1, *x.shape[1:]), generator=gen)
        x = to_model_input(x)
        return {"noisy": _noisy(x, self.cfg.timestep, noise), "meta": self.meta[idx], "y": self.y[idx]}

    def loss(self, model, batch):
        return F.cross_entropy(model(batch["noisy"], batch["meta"]).float(), batch["y"])

    def export(self, model, out, device):
        save_model(model, str(out / WEIGHTS))
        write_json(out / "finetune.json", {"n_classes": self.n_classes, "meta_dims": len(self.meta_mean)})
        return {"params": sum(p.numel() for p in model.parameters()), "n_classes": self.n_classes}


def finetune(cfg: FinetuneConfig, images: np.ndarray, meta: np.ndarray, labels: np.ndarray, n_classes: int,
             out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Fine-tune ``cfg.model_dir``'s U-Net with a head on the train images; writes ``out_dir`` (config.json,
    checkpoint/, train_log.csv, ``finetuned.safetensors``, summary.json)."""
    return train(FinetuneTask(cfg, images, meta, labels, n_classes), out_dir, resume=resume, progress=progress)


def load_finetuned(out_dir: str | Path, device: torch.device | None = None) -> FinetunedUNet:
    """The fine-tuned model of a finished run folder (safetensors; metadata statistics restored from it)."""
    out = Path(out_dir)
    if not (out / WEIGHTS).is_file():
        raise DiffprobeError(f"{out}: no {WEIGHTS}; the fine-tuning run has not finished (continue it with resume)")
    cfg, info = FinetuneConfig.from_dict(read_json(out / "config.json")), read_json(out / "finetune.json")
    zeros = np.zeros(info["meta_dims"], np.float32)
    model = FinetunedUNet(load_unet(cfg.model_dir), cfg.blocks, cfg.timestep, zeros, zeros + 1, info["n_classes"],
                          cfg.hidden, cfg.dropout)
    load_model(model, str(out / WEIGHTS))
    return model.to(device or torch.device("cpu")).eval()


@torch.no_grad()
def finetuned_logits(model: FinetunedUNet, images: np.ndarray, meta: np.ndarray, *, views: int = 8,
                     batch_size: int = 256, seed: int = 0, precision: str = "auto") -> np.ndarray:
    """(N, C) logits averaged over the first ``views`` of the 8 flips / quarter turns (fixed noise per batch)."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        x, m = images[s : s + batch_size], torch.from_numpy(np.asarray(meta[s : s + batch_size], np.float32))
        gen = torch.Generator().manual_seed(seed * 1_000_003 + s)
        total = 0
        for v in range(views):
            noise = torch.randn((len(x), 1, *x.shape[1:]), generator=gen)
            noisy = _noisy(to_model_input(dihedral(x, v)), model.timestep, noise)
            with autocast(device, precision):
                total = total + model(noisy.to(device), m.to(device)).float()
        out.append((total / views).cpu().numpy())
    return np.concatenate(out)

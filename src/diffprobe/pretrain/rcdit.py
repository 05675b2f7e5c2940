"""Pretrain an RC-DiT (ViT encoder + representation-conditioned DiT) by the denoising loss alone.

Same forward process as the U-Net (``make_scheduler``: 1000 steps, linear betas; epsilon prediction, or v with
``RCDiTConfig.prediction``; ``RCDiTTask`` extends ``DDPMTask``) and the same loop (``loop.train``: Accelerate,
bf16 autocast where native, EMA weights, atomic checkpoints), with randomness that is a pure function of
(seed, step) (batch order, augmentation, timesteps, noise, r-dropout), so ``resume``
continues exactly as an uninterrupted run would. Labels are never used.

The encoder sees the clean (augmented) image, the denoiser its noised copy; the gradient of
the denoising loss flows through the conditioning into the encoder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDIMScheduler

from ..backbones.ddpm_unet import make_scheduler
from ..backbones.rcdit import RCDiT, save_rcdit
from ..config.pretrain import RCDiTPretrainConfig  # noqa: F401 - defined without torch, re-exported
from ..data.dataset import ImageArray, to_model_input
from ..data.preprocess import Preprocess
from ..report.plots import image_grid
from ..utils import write_json
from .ddpm import DDPMTask, augment_batch
from .loop import square_images, train


@torch.no_grad()
def sample_conditioned(model: RCDiT, images: np.ndarray, path: Path, *, steps: int = 50, seed: int = 0,
                       invert: bool = True) -> Path:
    """DDIM samples conditioned on the r of ``images`` (uint8 (n, S, S)): originals on top, samples below.

    Samples that resemble their originals show that r carries the image's content.
    """
    device = next(model.parameters()).device
    sched = DDIMScheduler.from_config(make_scheduler().config, prediction_type=model.config.prediction)
    sched.set_timesteps(steps)
    r = model.encode(to_model_input(images).to(device))
    size = model.config.image_size
    x = torch.randn(len(images), 1, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    for t in sched.timesteps:
        out = model.denoiser(x, t.expand(len(x)).to(device), r)
        x = sched.step(out, t, x).prev_sample
    rows = [list(images / 255.0), list(((x.clamp(-1, 1) + 1) / 2).squeeze(1).cpu().numpy())]
    image_grid([[1 - im if invert else im for im in row] for row in rows], path,
               row_labels=["originals", "samples | r"], label_width=0.8, cell=1.1,
               title=f"RC-DiT samples conditioned on the originals' r (DDIM, {steps} steps)")
    return path


# Timestep buckets of the conditioning diagnostic: r should matter most where the noised image alone
# cannot be recovered (large t) and least near t = 0.
BUCKETS = ((0, 250), (250, 500), (500, 750), (750, 1000))
CONDITIONS = ("own", "shuffled", "null")


@torch.no_grad()
def conditioning_gap(model: RCDiT, images: np.ndarray, *, seed: int = 0, per_bucket: int = 64,
                     batch_size: int = 64, buckets: tuple[tuple[int, int], ...] = BUCKETS) -> dict:
    """Does the denoiser use r? Its denoising loss (MSE of the noise prediction, whatever the model outputs) on
    ``images`` (uint8 (N, S, S)) with each image's own r, with r shuffled across the images (another image's r),
    and with the learned null r, per timestep bucket (``buckets``: [low, high) pairs, by default ``BUCKETS``).
    ``per_bucket`` images per bucket, the same images, timesteps and noise at every call (drawn from ``seed``),
    so values from checkpoint to checkpoint compare.

    Returns ``{"0-250": {"own": .., "shuffled": .., "null": .., "gap": shuffled - own}, ..., "all": {...}}``:
    a gap near 0 means the denoiser ignores r and the encoder gets no reason to learn.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    n = min(per_bucket, len(images))
    alphas = make_scheduler().alphas_cumprod
    sums = {c: [] for c in CONDITIONS}
    out = {}
    for lo, hi in buckets:
        idx = torch.randperm(len(images), generator=gen)[:n].numpy()
        x0 = to_model_input(images[np.sort(idx)])
        t = torch.randint(lo, hi, (n,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        r = torch.cat([model.encode(x0[s:s + batch_size].to(device)) for s in range(0, n, batch_size)])
        # Shuffled across the bucket's images: each image denoised with the next image's r.
        reps = {"own": r, "shuffled": r.roll(1, 0), "null": model.null_rep.expand_as(r)}
        losses = {c: 0.0 for c in CONDITIONS}
        for s in range(0, n, batch_size):
            b = slice(s, s + batch_size)
            for c, rc in reps.items():
                pred = model.predict_eps(xt[b].to(device), t[b].to(device), rc[b])
                losses[c] += float(F.mse_loss(pred.float(), eps[b].to(device), reduction="sum"))
        per = {c: losses[c] / eps.numel() for c in CONDITIONS}
        for c in CONDITIONS:
            sums[c].append(per[c])
        out[f"{lo}-{hi}"] = {**per, "gap": per["shuffled"] - per["own"]}
    mean = {c: float(np.mean(v)) for c, v in sums.items()}
    out["all"] = {**mean, "gap": mean["shuffled"] - mean["own"]}
    model.train(was_training)
    return out


class RCDiTTask(DDPMTask):
    """The DDPM task with an RC-DiT: the encoder sees the clean image (or its own flip / quarter turn of it,
    ``encoder_view``), the denoiser its noised copy, and a per-image r-dropout mask is drawn after the noise.
    The uniform timesteps and the same view draw exactly what they drew before those settings existed."""

    desc = "pretrain rcdit"
    resume_keys = ("model", "seed", "batch_size", "r_dropout", "invert", "flatfield", "t_sampling", "encoder_view")

    def __init__(self, data: np.ndarray, cfg: RCDiTPretrainConfig, *, sample: bool = True):
        super().__init__(data, cfg, sample=sample)
        self.images = data  # uint8, for the conditioning diagnostic
        self.scheduler = make_scheduler()
        self.samples_from = data[np.linspace(0, len(data) - 1, 8).astype(int)]  # originals whose r the samples use

    def build_model(self):
        return RCDiT(self.cfg.model)

    def batch(self, model, idx, gen):
        batch = super().batch(model, idx, gen)
        if self.cfg.t_sampling == "high":  # density 2t / T^2: the inverse CDF of u is T * sqrt(u)
            n_steps = len(self.alphas)
            t = (torch.rand(len(idx), generator=gen).sqrt() * n_steps).long().clamp_(max=n_steps - 1)
            batch = {**batch, "t": t, "alpha": self.alphas[t]}
        batch["drop"] = torch.rand(len(idx), generator=gen) < self.cfg.r_dropout
        if self.cfg.encoder_view == "augmented":
            batch["x_enc"] = augment_batch(self.x[idx], gen)
        return batch

    def loss(self, model, batch):
        drop = batch["drop"] if self.cfg.r_dropout > 0 else None
        pred = model(batch.get("x_enc", batch["x0"]), self.noised(batch), batch["t"], drop=drop)
        target = batch["eps"]
        if self.cfg.model.prediction == "v_prediction":  # v = sqrt(a) eps - sqrt(1 - a) x0
            target = self.scheduler.get_velocity(batch["x0"], batch["eps"], batch["t"])
        return F.mse_loss(pred.float(), target)

    def conditioning(self, model) -> dict:
        return conditioning_gap(model, self.images, seed=self.cfg.seed)

    def on_checkpoint(self, model, out, step):
        gap = self.conditioning(model)
        path = Path(out) / "conditioning.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "bucket", *CONDITIONS, "gap"])
            for bucket, v in gap.items():
                writer.writerow([step, bucket, *(f"{v[c]:.6f}" for c in CONDITIONS), f"{v['gap']:.6f}"])
        return {"r_gap": f"{gap['all']['gap']:.4f}"}

    def export(self, model, out, device):
        save_rcdit(model, out)
        write_json(out / "preprocess.json", Preprocess.for_training(self.cfg).to_dict())
        if self.sample:
            sample_conditioned(model.to(device).eval(), self.samples_from, out / "samples.png", seed=self.cfg.seed,
                               invert=self.cfg.invert)
        return {"params": sum(p.numel() for p in model.parameters()),
                "encoder_params": sum(p.numel() for p in model.encoder.parameters()),
                "conditioning": self.conditioning(model.to(device))}


def pretrain_rcdit(images: ImageArray | np.ndarray, out_dir: str | Path, cfg: RCDiTPretrainConfig, *,
                   resume: bool = False, progress: bool = True, sample: bool = True,
                   accelerator: Accelerator | None = None) -> Path:
    """Train an RC-DiT on ``images`` (uint8 N x S x S; labels are never used).

    Writes to ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``,
    ``rcdit.safetensors`` (EMA weights) + ``backbone.json`` + ``preprocess.json`` (a backbone
    dir of kind ``rcdit``), ``samples.png`` and ``summary.json``. Returns ``out_dir``.
    """
    data = square_images(images.images if isinstance(images, ImageArray) else images, cfg.model.image_size,
                         cfg.batch_size, "RC-DiT")
    return train(RCDiTTask(data, cfg, sample=sample), out_dir, resume=resume, progress=progress,
                 accelerator=accelerator)

"""Pretrain an RC-DiT (ViT encoder + representation-conditioned DiT) by the denoising loss alone.

Same forward process as the U-Net (``make_scheduler``: 1000 steps, linear betas, epsilon
prediction), same machinery: Accelerate (CPU, one GPU or ``accelerate launch``), bf16
autocast with fp32 master weights, EMA weights, atomic checkpoints, and randomness that is
a pure function of (seed, step) (batch order, augmentation, timesteps, noise, r-dropout), so
``resume`` continues exactly as an uninterrupted run would. Labels are never used.

The encoder sees the clean (augmented) image, the denoiser its noised copy; the gradient of
the denoising loss flows through the conditioning into the encoder.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDIMScheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..backbones.ddpm_unet import make_scheduler
from ..backbones.rcdit import RCDiT, RCDiTConfig, save_rcdit
from ..data.dataset import ImageArray, to_model_input
from ..data.preprocess import Preprocess
from ..utils import DiffprobeError, read_json, stable_seed, write_json
from .checkpoint import load_checkpoint, save_checkpoint
from .ddpm import augment_batch, batch_for_step, lr_at

log = logging.getLogger(__name__)


@dataclass
class RCDiTPretrainConfig:
    """Everything that defines an RC-DiT run; saved as ``config.json`` in the run folder.

    r_dropout: share of images whose r is replaced by a learned null vector (classifier-free
    style regulariser; 0 disables it).
    """

    model: RCDiTConfig = field(default_factory=RCDiTConfig)
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    ema_decay: float = 0.999
    r_dropout: float = 0.1
    steps: int | None = None
    minutes: float | None = None
    checkpoint_every: int = 500
    seed: int = 0
    bf16: bool = True
    augment: bool = True
    invert: bool = True

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = RCDiTConfig.from_dict(self.model)
        for name in ("batch_size", "warmup_steps", "checkpoint_every", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise DiffprobeError(f"pretrain setting {name} must be a non-negative integer, got {v!r}")
        if self.batch_size < 1:
            raise DiffprobeError("batch_size must be at least 1")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise DiffprobeError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.r_dropout < 1:
            raise DiffprobeError(f"r_dropout must be in [0, 1), got {self.r_dropout!r}")
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(size=self.model.image_size, invert=self.invert)

    def to_dict(self) -> dict:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RCDiTPretrainConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise DiffprobeError(f"unknown RC-DiT pretrain settings {sorted(set(d) - known)}; known: {sorted(known)}")
        return cls(**d)


@torch.no_grad()
def sample_conditioned(model: RCDiT, images: np.ndarray, path: Path, *, steps: int = 50, seed: int = 0,
                       invert: bool = True) -> Path:
    """DDIM samples conditioned on the r of ``images`` (uint8 (n, S, S)): originals on top, samples below.

    Samples that resemble their originals show that r carries the image's content.
    """
    import matplotlib  # noqa: PLC0415 - plotting only here
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    device = next(model.parameters()).device
    sched = DDIMScheduler.from_config(make_scheduler().config)
    sched.set_timesteps(steps)
    r = model.encode(to_model_input(images).to(device))
    size = model.config.image_size
    x = torch.randn(len(images), 1, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    for t in sched.timesteps:
        eps = model.denoiser(x, t.expand(len(x)).to(device), r)
        x = sched.step(eps, t, x).prev_sample
    rows = [images / 255.0, ((x.clamp(-1, 1) + 1) / 2).squeeze(1).cpu().numpy()]
    fig, axes = plt.subplots(2, len(images), figsize=(len(images) * 1.1, 2.4), squeeze=False)
    for row, (imgs, ax_row) in enumerate(zip(rows, axes)):
        for ax, im in zip(ax_row, imgs):
            ax.axis("off")
            ax.imshow(1 - im if invert else im, cmap="gray", vmin=0, vmax=1)
        ax_row[0].set_title("originals" if row == 0 else "samples | r", fontsize=7, loc="left")
    fig.suptitle(f"RC-DiT samples conditioned on the originals' r (DDIM, {steps} steps)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pretrain_rcdit(images: ImageArray | np.ndarray, out_dir: str | Path, cfg: RCDiTPretrainConfig, *,
                   resume: bool = False, progress: bool = True, sample: bool = True,
                   accelerator: Accelerator | None = None) -> Path:
    """Train an RC-DiT on ``images`` (uint8 N x S x S; labels are never used).

    Writes to ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``,
    ``rcdit.safetensors`` (EMA weights) + ``backbone.json`` + ``preprocess.json`` (a backbone
    dir of kind ``rcdit``), ``summary.json`` and ``samples.png``. Returns ``out_dir``.
    """
    out = Path(out_dir)
    data = images.images if isinstance(images, ImageArray) else np.asarray(images)
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise DiffprobeError(f"pretraining needs square images (N, S, S); got {data.shape}")
    if data.shape[1] != cfg.model.image_size:
        raise DiffprobeError(f"images are {data.shape[1]} px but the RC-DiT expects {cfg.model.image_size} px; "
                             f"preprocess with --image-size {cfg.model.image_size}")
    if len(data) < cfg.batch_size:
        raise DiffprobeError(f"only {len(data)} training images for a batch of {cfg.batch_size}; lower --batch-size")

    acc = accelerator or Accelerator(mixed_precision="bf16" if cfg.bf16 else "no")
    ckpt_dir = out / "checkpoint"
    if (out / "config.json").exists():
        if not resume:
            raise DiffprobeError(f"{out}: a run already exists here; pass --resume to continue it or "
                                 f"choose another --out")
        saved = RCDiTPretrainConfig.from_dict(read_json(out / "config.json"))
        if (saved.model, saved.seed, saved.batch_size, saved.r_dropout) != (cfg.model, cfg.seed, cfg.batch_size,
                                                                            cfg.r_dropout):
            raise DiffprobeError(f"{out}: --resume with a different architecture, seed, batch size or r-dropout "
                                 f"than the saved config.json; use the same settings or another --out")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())

    torch.manual_seed(cfg.seed)
    model = RCDiT(cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4)
    state = {"step": 0, "elapsed_s": 0.0, "images_seen": 0}
    if resume and (ckpt_dir / "state.json").is_file():
        ck = load_checkpoint(ckpt_dir)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        for p, s in zip(ema.shadow_params, ck["ema"]):
            p.data.copy_(s)
        state = ck["state"]
        ema.optimization_step = state["step"]
        log.info("resumed from step %d", state["step"])
    model, optimizer = acc.prepare(model, optimizer)
    ema.to(acc.device)

    n_train = make_scheduler().config.num_train_timesteps
    alphas = make_scheduler().alphas_cumprod.to(acc.device)
    x_all = to_model_input(data)
    world, rank = acc.num_processes, acc.process_index
    if cfg.batch_size % world:
        raise DiffprobeError(f"batch size {cfg.batch_size} must divide evenly across {world} processes")
    per_rank = cfg.batch_size // world

    max_steps = cfg.steps if cfg.steps is not None else 10**12
    budget_s = cfg.minutes * 60 if cfg.minutes is not None else math.inf
    log_path = out / "train_log.csv"
    new_log = not log_path.exists() or state["step"] == 0
    log_file = open(log_path, "w" if new_log else "a", newline="") if acc.is_main_process else None
    writer = csv.writer(log_file) if log_file else None
    if writer and new_log:
        writer.writerow(["step", "loss", "lr", "images_per_s", "elapsed_s"])

    def save():
        save_checkpoint(ckpt_dir, model=acc.unwrap_model(model), ema_params=ema.shadow_params, optimizer=optimizer,
                        state=state)

    bar = tqdm(total=cfg.steps, initial=state["step"], desc="pretrain rcdit", unit="step",
               disable=not (progress and acc.is_main_process), mininterval=2.0)
    model.train()
    t_start = time.time() - state["elapsed_s"]
    t_window, n_window, loss_window = time.time(), 0, []
    try:
        while state["step"] < max_steps and (time.time() - t_start) < budget_s:
            step = state["step"]
            gen = torch.Generator().manual_seed(stable_seed("step", cfg.seed, step))
            x0 = x_all[batch_for_step(step, len(x_all), cfg.batch_size, cfg.seed)]
            if cfg.augment:
                x0 = augment_batch(x0, gen)
            t = torch.randint(0, n_train, (cfg.batch_size,), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            drop = torch.rand(cfg.batch_size, generator=gen) < cfg.r_dropout
            sl = slice(rank * per_rank, (rank + 1) * per_rank)  # this process's share of the global batch
            x0, t, eps, drop = (v[sl].to(acc.device) for v in (x0, t, eps, drop))
            a = alphas[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
            with acc.autocast():
                pred = model(x0, xt, t, drop=drop if cfg.r_dropout > 0 else None)
            loss = F.mse_loss(pred.float(), eps)
            if not torch.isfinite(loss):
                raise DiffprobeError(
                    f"training loss became {loss.item()} at step {step}; the last complete checkpoint is in "
                    f"{ckpt_dir}. Lower --lr (now {cfg.lr}) and continue with --resume")
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(acc.unwrap_model(model).parameters())
            state["step"] = step + 1
            state["images_seen"] += cfg.batch_size
            state["elapsed_s"] = time.time() - t_start
            loss_window.append(loss.item())
            n_window += cfg.batch_size
            bar.update(1)
            if state["step"] % 20 == 0 or state["step"] == max_steps:
                ips = n_window / max(1e-9, time.time() - t_window)
                mean_loss = float(np.mean(loss_window))
                bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.0f}")
                if writer:
                    writer.writerow([state["step"], f"{mean_loss:.6f}", f"{lr_at(step, cfg):.3e}", f"{ips:.1f}",
                                     f"{state['elapsed_s']:.1f}"])
                    log_file.flush()
                t_window, n_window, loss_window = time.time(), 0, []
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and acc.is_main_process:
                save()
    finally:
        bar.close()
        if log_file:
            log_file.close()

    acc.wait_for_everyone()
    if acc.is_main_process:
        save()
        final = RCDiT(cfg.model)
        ema.copy_to(final.parameters())
        save_rcdit(final, out)
        write_json(out / "preprocess.json", cfg.preprocess.to_dict())
        write_json(out / "summary.json", {**state, "params": sum(p.numel() for p in final.parameters()),
                                          "encoder_params": sum(p.numel() for p in final.encoder.parameters()),
                                          "n_train_images": len(data), "device": str(acc.device),
                                          "processes": world})
        if sample:
            pick = np.linspace(0, len(data) - 1, 8).astype(int)
            sample_conditioned(final.to(acc.device).eval(), data[pick], out / "samples.png", seed=cfg.seed,
                               invert=cfg.invert)
    acc.wait_for_everyone()
    return out

"""Pretrain a DDPM U-Net denoiser on unlabelled images (epsilon prediction, 1000 steps, linear betas).

Runs through Hugging Face Accelerate, so the same code trains on a CPU, one GPU or many
(``accelerate launch``). On CPU, bf16 autocast uses AMX-BF16 units while master weights stay
fp32. Randomness (batch order, augmentation, timesteps, noise) is a pure function of
(seed, step), so ``--resume`` continues exactly as an uninterrupted run would.
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

from ..backbones.base import write_backbone_json
from ..backbones.ddpm_unet import UNetConfig, make_scheduler
from ..data.dataset import ImageArray, to_model_input
from ..data.preprocess import Preprocess
from ..utils import DiffprobeError, read_json, stable_seed, write_json
from .checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    """Everything that defines a pretraining run; saved as ``config.json`` in the run folder."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    batch_size: int = 64  # global batch, split across processes
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    ema_decay: float = 0.999
    steps: int | None = None  # budget in optimizer steps ...
    minutes: float | None = None  # ... or in wall-clock minutes (whichever ends first)
    checkpoint_every: int = 500
    seed: int = 0
    bf16: bool = True
    augment: bool = True  # flips and 90-degree rotations: plankton have no canonical orientation
    invert: bool = True

    def __post_init__(self):
        if isinstance(self.unet, dict):
            self.unet = UNetConfig(**{**self.unet, "channels": tuple(self.unet["channels"])})
        for name, typ in (("batch_size", int), ("warmup_steps", int), ("checkpoint_every", int), ("seed", int)):
            v = getattr(self, name)
            if not isinstance(v, typ) or isinstance(v, bool) or v < 0:
                raise DiffprobeError(f"pretrain setting {name} must be a non-negative integer, got {v!r}")
        if self.batch_size < 1:
            raise DiffprobeError("batch_size must be at least 1")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise DiffprobeError(f"lr must be a positive number, got {self.lr!r}")
        if self.steps is None and self.minutes is None:
            raise DiffprobeError("give a budget: steps or minutes")

    @property
    def preprocess(self) -> Preprocess:
        return Preprocess(size=self.unet.image_size, invert=self.invert)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DiffprobeError(f"unknown pretrain settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


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


def batch_for_step(step: int, n_images: int, batch_size: int, seed: int) -> torch.Tensor:
    """Global batch indices of a step: epochs are seeded permutations, so a step's batch is fixed."""
    per_epoch = max(1, n_images // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(stable_seed("epoch", seed, epoch)))
    return perm[pos * batch_size : (pos + 1) * batch_size]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then constant: a function of the step alone, so resuming needs no scheduler state."""
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def save_pipeline_dir(out: Path, unet, cfg: PretrainConfig) -> None:
    """The frozen model in diffusers format, with preprocessing and scheduler beside it."""
    unet.save_pretrained(out / "unet", safe_serialization=True)
    write_backbone_json(out, "ddpm_unet", unet=cfg.unet.to_dict())
    make_scheduler().save_pretrained(out / "scheduler")
    write_json(out / "preprocess.json", cfg.preprocess.to_dict())


@torch.no_grad()
def sample_grid(unet, path: Path, *, n: int = 16, steps: int = 50, seed: int = 0, invert: bool = True) -> Path:
    """Draw ``n`` images with DDIM (``steps`` steps) and save them as a PNG grid."""
    import matplotlib  # noqa: PLC0415 - plotting only here
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sched = DDIMScheduler.from_config(make_scheduler().config)
    sched.set_timesteps(steps)
    device = next(unet.parameters()).device
    size = unet.config.sample_size
    x = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    for t in sched.timesteps:
        eps = unet(x, t).sample
        x = sched.step(eps, t, x).prev_sample
    imgs = ((x.clamp(-1, 1) + 1) / 2).squeeze(1).cpu().numpy()
    if invert:
        imgs = 1 - imgs
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2))
    for ax, im in zip(np.ravel(axes), list(imgs) + [None] * (rows * cols - n)):
        ax.axis("off")
        if im is not None:
            ax.imshow(im, cmap="gray", vmin=0, vmax=1)
    fig.suptitle("DDPM samples (DDIM, %d steps)" % steps, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def pretrain(images: ImageArray | np.ndarray, out_dir: str | Path, cfg: PretrainConfig, *, resume: bool = False,
             progress: bool = True, sample: bool = True, accelerator: Accelerator | None = None) -> Path:
    """Train a DDPM U-Net on ``images`` (uint8 N x S x S; labels are never used).

    Writes to ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``,
    ``unet/`` + ``scheduler/`` + ``preprocess.json`` (EMA weights, diffusers format) and
    ``samples.png``. Returns ``out_dir``.
    """
    out = Path(out_dir)
    data = images.images if isinstance(images, ImageArray) else np.asarray(images)
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise DiffprobeError(f"pretraining needs square images (N, S, S); got {data.shape}")
    if data.shape[1] != cfg.unet.image_size:
        raise DiffprobeError(f"images are {data.shape[1]} px but the U-Net expects {cfg.unet.image_size} px; "
                             f"preprocess with --image-size {cfg.unet.image_size}")
    if len(data) < cfg.batch_size:
        raise DiffprobeError(f"only {len(data)} training images for a batch of {cfg.batch_size}; lower --batch-size")

    acc = accelerator or Accelerator(mixed_precision="bf16" if cfg.bf16 else "no")
    ckpt_dir = out / "checkpoint"
    if out.exists() and (out / "config.json").exists():
        if not resume:
            raise DiffprobeError(f"{out}: a run already exists here; pass --resume to continue it or "
                                 f"choose another --out")
        saved = PretrainConfig.from_dict(read_json(out / "config.json"))
        if saved.unet != cfg.unet or saved.seed != cfg.seed or saved.batch_size != cfg.batch_size:
            raise DiffprobeError(f"{out}: --resume with a different architecture, seed or batch size than the "
                                 f"saved config.json; use the same settings or another --out")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())

    torch.manual_seed(cfg.seed)
    unet = cfg.unet.build()
    scheduler = make_scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=3 / 4)
    state = {"step": 0, "elapsed_s": 0.0, "images_seen": 0}
    if resume and (ckpt_dir / "state.json").is_file():
        ck = load_checkpoint(ckpt_dir)
        unet.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        for p, s in zip(ema.shadow_params, ck["ema"]):
            p.data.copy_(s)
        state = ck["state"]
        ema.optimization_step = state["step"]
        log.info("resumed from step %d", state["step"])
    unet, optimizer = acc.prepare(unet, optimizer)
    ema.to(acc.device)

    alphas = scheduler.alphas_cumprod.to(acc.device)
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

    bar = tqdm(total=cfg.steps, initial=state["step"], desc="pretrain", unit="step",
               disable=not (progress and acc.is_main_process), mininterval=2.0)
    unet.train()
    t_start = time.time() - state["elapsed_s"]
    t_window, n_window, loss_window = time.time(), 0, []
    try:
        while state["step"] < max_steps and (time.time() - t_start) < budget_s:
            step = state["step"]
            gen = torch.Generator().manual_seed(stable_seed("step", cfg.seed, step))
            idx = batch_for_step(step, len(x_all), cfg.batch_size, cfg.seed)
            x0 = x_all[idx]
            if cfg.augment:
                x0 = augment_batch(x0, gen)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (cfg.batch_size,), generator=gen)
            eps = torch.randn(x0.shape, generator=gen)
            sl = slice(rank * per_rank, (rank + 1) * per_rank)  # this process's share of the global batch
            x0, t, eps = x0[sl].to(acc.device), t[sl].to(acc.device), eps[sl].to(acc.device)
            a = alphas[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
            with acc.autocast():
                pred = unet(xt, t).sample
            loss = F.mse_loss(pred.float(), eps)
            if not torch.isfinite(loss):
                raise DiffprobeError(
                    f"training loss became {loss.item()} at step {step}; the last complete checkpoint is in "
                    f"{ckpt_dir}. Lower --lr (now {cfg.lr}) and continue with --resume")
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, cfg)
            acc.backward(loss)
            acc.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            ema.step(acc.unwrap_model(unet).parameters())
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
                    writer.writerow([state["step"], f"{mean_loss:.6f}", f"{lr_at(step, cfg):.3e}",
                                     f"{ips:.1f}", f"{state['elapsed_s']:.1f}"])
                    log_file.flush()
                t_window, n_window, loss_window = time.time(), 0, []
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and acc.is_main_process:
                save_checkpoint(ckpt_dir, model=acc.unwrap_model(unet), ema_params=ema.shadow_params,
                                optimizer=optimizer, state=state)
    finally:
        bar.close()
        if log_file:
            log_file.close()

    acc.wait_for_everyone()
    if acc.is_main_process:
        save_checkpoint(ckpt_dir, model=acc.unwrap_model(unet), ema_params=ema.shadow_params, optimizer=optimizer,
                        state=state)
        final = cfg.unet.build()
        ema.copy_to(final.parameters())
        save_pipeline_dir(out, final, cfg)
        write_json(out / "summary.json", {**state, "params": sum(p.numel() for p in final.parameters()),
                                          "n_train_images": len(data), "device": str(acc.device),
                                          "processes": world})
        if sample:
            sample_grid(final.to(acc.device).eval(), out / "samples.png", seed=cfg.seed, invert=cfg.invert)
    acc.wait_for_everyone()
    return out

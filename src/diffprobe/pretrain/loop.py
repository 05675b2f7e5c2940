"""The one training loop that every backbone's trainer runs (DDPM U-Net, RC-DiT, the baselines).

A method describes itself as a ``TrainTask`` (its model, the random inputs of a step, its loss,
its learning-rate schedule, what to export); ``train`` owns everything that makes a run safe
and reproducible, so those properties hold for every method alike:

- a run folder is never overwritten: continuing it needs ``resume``, with compatible settings;
- Hugging Face Accelerate (CPU, one GPU or ``accelerate launch``) with bf16 autocast (where it is measured faster) and fp32
  master weights, the global batch split evenly across processes;
- randomness is a pure function of (seed, step): the batch indices (``batch_for_step``) and a
  per-step ``torch.Generator``, so ``resume`` continues exactly as an uninterrupted run would;
- optional EMA weights (diffusers ``EMAModel``), exported instead of the raw ones;
- a NaN/inf loss stops the run with a ``DiffprobeError``; gradients are clipped;
- tqdm progress with loss and img/s, ``train_log.csv``, atomic checkpoints, a step and/or
  wall-clock budget, and ``summary.json`` written last.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..config.pretrain import RunConfig  # noqa: F401 - defined without torch, re-exported
from ..utils import DiffprobeError, read_json, resolve_precision, stable_seed, write_json
from .checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


class TrainTask:
    """What one training method adds to ``train``; subclasses fill in the hooks.

    ``cfg`` is the method's ``RunConfig`` dataclass (``seed``, ``batch_size``, ``lr``, ``weight_decay``,
    ``precision``, ``checkpoint_every``, ``to_dict``), saved as ``config.json``.
    """

    cfg: Any
    desc: str  # progress-bar label
    n_images: int  # training images; ``batch`` receives indices into them
    steps: int | None  # budget in optimizer steps ...
    minutes: float | None = None  # ... and/or in wall-clock minutes (whichever ends first)
    resume_keys: tuple[str, ...]  # config.json entries that a resumed run must share with the saved one
    clip_grad: float = 1.0  # max gradient norm (0: no clipping)
    ema_decay: float | None = None  # keep EMA weights and export them (None: export the trained weights)
    log_every: int = 20  # a train_log.csv row (mean loss) every this many steps

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised model (under the run's seed); all of its state is checkpointed."""
        raise NotImplementedError

    def lr_schedule(self, optimizer: torch.optim.Optimizer) -> Callable[[int], None]:
        """The function that sets the optimizer's learning rate for a step, from the step alone
        (so resuming needs no scheduler state)."""
        raise NotImplementedError

    def batch(self, model: torch.nn.Module, idx: torch.Tensor, gen: torch.Generator) -> dict:
        """Inputs of the whole global batch (images ``idx``), on the CPU: every random draw of a step
        happens here, from ``gen``, so that all processes draw the same and take their share."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        """Scalar loss of this process's share of the batch (runs under autocast)."""
        raise NotImplementedError

    def before_step(self, model: torch.nn.Module, step: int) -> None:
        """Before the forward pass (momentum teachers)."""

    def after_backward(self, model: torch.nn.Module, step: int) -> None:
        """Between backward and the optimizer step (gradient surgery)."""

    def on_checkpoint(self, model: torch.nn.Module, out: Path, step: int) -> dict:
        """After each checkpoint, on the main process: diagnostics of the model being trained (written by the
        task to ``out``); returns short values for the progress bar."""
        return {}

    def export(self, model: torch.nn.Module, out: Path, device: torch.device) -> dict:
        """Write the frozen backbone (and samples) to ``out``; return entries for ``summary.json``."""
        raise NotImplementedError


def square_images(data: np.ndarray, image_size: int, batch_size: int, model_name: str) -> np.ndarray:
    """Check the training images (uint8 (N, S, S)) fit the model and the batch, before any run folder is made."""
    data = np.asarray(data)
    if data.ndim != 3 or data.shape[1] != data.shape[2]:
        raise DiffprobeError(f"pretraining needs square images (N, S, S); got {data.shape}")
    if data.shape[1] != image_size:
        raise DiffprobeError(f"images are {data.shape[1]} px but the {model_name} expects {image_size} px; "
                             f"preprocess with --image-size {image_size}")
    if len(data) < batch_size:
        raise DiffprobeError(f"only {len(data)} training images for a batch of {batch_size}; lower --batch-size")
    return data


def batch_for_step(step: int, n_images: int, batch_size: int, seed: int) -> torch.Tensor:
    """Global batch indices of a step: epochs are seeded permutations, so a step's batch is fixed."""
    per_epoch = max(1, n_images // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(stable_seed("epoch", seed, epoch)))
    return perm[pos * batch_size : (pos + 1) * batch_size]


def _map(obj, fn):
    """Apply ``fn`` to every tensor of a nested dict / list batch."""
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_map(v, fn) for v in obj]
    return fn(obj)


def _check_run_dir(out: Path, cfg, keys: tuple[str, ...], resume: bool) -> None:
    if not (out / "config.json").exists():
        return
    if not resume:
        raise DiffprobeError(f"{out}: a run already exists here; pass --resume to continue it or choose another --out")
    saved, mine = type(cfg).from_dict(read_json(out / "config.json")).to_dict(), cfg.to_dict()
    diff = [k for k in keys if saved[k] != mine[k]]
    if diff:
        raise DiffprobeError(f"{out}: --resume with a different architecture or settings ({', '.join(diff)}) than "
                             f"the saved config.json; use the same settings or another --out")


def train(task: TrainTask, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          accelerator: Accelerator | None = None) -> Path:
    """Train ``task`` into ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``,
    what ``task.export`` writes, then ``summary.json``. Returns ``out_dir``."""
    out, cfg = Path(out_dir), task.cfg
    # cpu=True where there is no GPU: Accelerate then runs a torchrun / accelerate-launch job as gloo data parallel.
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(cfg.precision, device)
    acc = accelerator or Accelerator(mixed_precision="bf16" if precision == "bf16" else "no", cpu=device.type == "cpu")
    ckpt_dir = out / "checkpoint"
    _check_run_dir(out, cfg, task.resume_keys, resume)
    acc.wait_for_everyone()  # every rank checks the run folder before the main one writes into it
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", cfg.to_dict())

    torch.manual_seed(cfg.seed)
    model = task.build_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    set_lr = task.lr_schedule(optimizer)
    ema = None if task.ema_decay is None else EMAModel(model.parameters(), decay=task.ema_decay, use_ema_warmup=True,
                                                       inv_gamma=1.0, power=3 / 4)
    state = {"step": 0, "elapsed_s": 0.0, "images_seen": 0, "first_loss": None, "last_loss": None}
    if resume and (ckpt_dir / "state.json").is_file():
        ck = load_checkpoint(ckpt_dir)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        state.update(ck["state"])  # runs checkpointed before first/last_loss were recorded keep the defaults
        if ema:
            for p, s in zip(ema.shadow_params, ck["ema"]):
                p.data.copy_(s)
            ema.optimization_step = state["step"]
        log.info("resumed from step %d", state["step"])
    model, optimizer = acc.prepare(model, optimizer)
    inner = acc.unwrap_model(model)
    if ema:
        ema.to(acc.device)

    world, rank = acc.num_processes, acc.process_index
    if cfg.batch_size % world:
        raise DiffprobeError(f"batch size {cfg.batch_size} must divide evenly across {world} processes")
    per_rank = cfg.batch_size // world
    share = slice(rank * per_rank, (rank + 1) * per_rank)  # this process's part of the global batch

    def save():
        save_checkpoint(ckpt_dir, model=inner, ema_params=ema.shadow_params if ema else [], optimizer=optimizer,
                        state=state)

    max_steps = task.steps if task.steps is not None else 10**12
    budget_s = task.minutes * 60 if task.minutes is not None else math.inf
    log_path = out / "train_log.csv"
    new_log = not log_path.exists() or state["step"] == 0
    log_file = open(log_path, "w" if new_log else "a", newline="") if acc.is_main_process else None
    writer = csv.writer(log_file) if log_file else None
    if writer and new_log:
        writer.writerow(["step", "loss", "lr", "images_per_s", "elapsed_s"])

    bar = tqdm(total=task.steps, initial=state["step"], desc=task.desc, unit="step",
               disable=not (progress and acc.is_main_process), mininterval=2.0)
    model.train()
    t_start = time.time() - state["elapsed_s"]
    t_window, n_window, loss_window = time.time(), 0, []
    try:
        while state["step"] < max_steps and (time.time() - t_start) < budget_s:
            step = state["step"]
            gen = torch.Generator().manual_seed(stable_seed("step", cfg.seed, step))
            batch = task.batch(inner, batch_for_step(step, task.n_images, cfg.batch_size, cfg.seed), gen)
            batch = _map(batch, lambda v: v[share].to(acc.device))
            task.before_step(inner, step)
            set_lr(step)
            with acc.autocast():
                loss = task.loss(model, batch)
            value = acc.reduce(loss.detach(), reduction="mean").item()  # the global batch's loss, on every rank
            if not math.isfinite(value):
                raise DiffprobeError(
                    f"{task.desc}: training loss became {value} at step {step}; the last complete checkpoint "
                    f"is in {ckpt_dir}. Lower --lr (now {cfg.lr}) and continue with --resume")
            acc.backward(loss)
            if task.clip_grad:
                acc.clip_grad_norm_(model.parameters(), task.clip_grad)
            task.after_backward(inner, step)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema:
                ema.step(inner.parameters())
            state["step"] = step + 1
            state["images_seen"] += cfg.batch_size
            state["elapsed_s"] = time.time() - t_start
            state["first_loss"] = value if state["first_loss"] is None else state["first_loss"]
            state["last_loss"] = value
            loss_window.append(value)
            n_window += cfg.batch_size
            bar.update(1)
            if state["step"] % task.log_every == 0 or state["step"] == max_steps:
                ips = n_window / max(1e-9, time.time() - t_window)
                mean_loss = float(np.mean(loss_window))
                bar.set_postfix(loss=f"{mean_loss:.4f}", img_s=f"{ips:.0f}", refresh=False)
                if writer:
                    writer.writerow([state["step"], f"{mean_loss:.6f}", f"{optimizer.param_groups[0]['lr']:.3e}",
                                     f"{ips:.1f}", f"{state['elapsed_s']:.1f}"])
                    log_file.flush()
                t_window, n_window, loss_window = time.time(), 0, []
            if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and acc.is_main_process:
                save()
                shown = task.on_checkpoint(inner, out, state["step"])
                if shown:
                    bar.set_postfix(loss=f"{float(np.mean(loss_window or [value])):.4f}", **shown, refresh=False)
    finally:
        bar.close()
        if log_file:
            log_file.close()

    acc.wait_for_everyone()
    if acc.is_main_process:
        save()
        final = inner
        if ema:
            final = task.build_model()
            # Buffers (BatchNorm statistics) are not averaged: the last step's go with the averaged weights.
            final.load_state_dict(inner.state_dict())
            ema.copy_to(final.parameters())
        summary = task.export(final, out, acc.device)
        write_json(out / "summary.json", {
            **state, "images_per_s": round(state["images_seen"] / max(1e-9, state["elapsed_s"]), 1), **summary,
            "n_train_images": task.n_images, "device": str(acc.device), "processes": world, "precision": precision})
    acc.wait_for_everyone()
    return out

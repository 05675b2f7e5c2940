"""The one training loop of the probes' small heads (``mlp``, ``attentive``): AdamW with a one-cycle schedule
over minibatches, the loss in fp32 (the forward under ``utils.autocast``), and the epoch with the lowest
validation log loss kept, or, with no validation data (a refit on train + val), a fixed epoch.

Inputs are tuples of tensors that share their first dimension (None entries pass through as None), so a
head that reads tokens and per-image values trains like one that reads a single matrix.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..utils import DiffprobeError, autocast

Inputs = tuple[torch.Tensor | None, ...]


def _rows(inputs: Inputs, index) -> Inputs:
    return tuple(None if t is None else t[index] for t in inputs)


def fit_head(build: Callable[[], torch.nn.Module], train: Inputs, y_train: torch.Tensor, val: Inputs | None,
             y_val: torch.Tensor | None, *, epochs: int, lr: float, weight_decay: float, batch_size: int,
             seed: int, precision: str, label_smoothing: float = 0.0, stop_epoch: int | None = None,
             val_batch: int = 2048) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Train ``build()`` (made under ``seed``) on ``train`` / ``y_train`` (N,); returns the kept state (CPU
    tensors) and the per-epoch history ({"epoch", "val_log_loss", "val_accuracy"}; empty without val).

    With ``val`` the epoch of lowest val log loss is kept; without it, ``stop_epoch`` (1..epochs)."""
    if val is None and not (stop_epoch and 1 <= stop_epoch <= epochs):
        raise DiffprobeError(f"without val data the head needs a stop epoch in 1..{epochs}, got {stop_epoch}")
    device = y_train.device
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = build().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(y_train)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-n // batch_size),
                                                pct_start=0.1)
    best_loss, best_state, history = float("inf"), None, []
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=g).to(device)
        for s in range(0, n, batch_size):
            b = perm[s:s + batch_size]
            with autocast(device, precision):
                logits = net(*_rows(train, b))
            loss = F.cross_entropy(logits.float(), y_train[b], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if val is None:
            if epoch + 1 == stop_epoch:
                best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                break
            continue
        net.eval()
        with torch.no_grad():
            lv = torch.cat([net(*_rows(val, slice(s, s + val_batch))).float()
                            for s in range(0, len(y_val), val_batch)])
            vloss, vacc = float(F.cross_entropy(lv, y_val)), float((lv.argmax(1) == y_val).float().mean())
        history.append({"epoch": epoch + 1, "val_log_loss": vloss, "val_accuracy": vacc})
        if vloss < best_loss:
            best_loss = vloss
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    return best_state, history

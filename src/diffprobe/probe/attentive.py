"""An attentive probe: a few learned queries read the spatial tokens of one (block, timestep) map.

Global average pooling throws away where things are in the map. An attentive probe (as in recent
efficient-probing work) keeps the backbone frozen and lets ``n_queries`` learned queries cross-attend over
the map's tokens, then classifies their outputs together with the averaged token, so it can only add to
what the average pooling of the paper's linear probe reads. It is trained on cached features
(pooling ``grid4`` or ``grid8``: 16 or 64 tokens per map), early-stopped on validation log loss.

Shapes: tokens ``x`` are float32 (N, T, C): N images, T tokens, C channels; a ``gridN`` feature vector
(N, C*N*N) becomes tokens with ``grid_tokens``. Classes are integer labels 0..C-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import DiffprobeError, autocast, default_device

__all__ = ["AttentiveHead", "AttentiveProbe", "grid_tokens"]


def grid_tokens(x: np.ndarray, grid: int) -> np.ndarray:
    """(N, C*grid*grid) channel-major ``gridN`` features (``backbones.base.pool``) -> (N, grid*grid, C) tokens."""
    x = np.asarray(x)
    t = grid * grid
    if x.ndim != 2 or x.shape[1] % t:
        raise DiffprobeError(f"grid{grid} features have C*{t} columns; got shape {x.shape}")
    return x.reshape(len(x), -1, t).transpose(0, 2, 1)


class _AttentiveNet(torch.nn.Module):
    def __init__(self, n_tokens: int, channels: int, n_classes: int, n_queries: int, n_heads: int, dropout: float):
        super().__init__()
        self.position = torch.nn.Parameter(torch.randn(n_tokens, channels) * 0.02)
        self.norm = torch.nn.LayerNorm(channels)
        self.queries = torch.nn.Parameter(torch.randn(n_queries, channels) * 0.02)
        self.attention = torch.nn.MultiheadAttention(channels, n_heads, batch_first=True)
        self.out_norm = torch.nn.LayerNorm((n_queries + 1) * channels)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear((n_queries + 1) * channels, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(z + self.position)
        q = self.queries.expand(len(z), -1, -1)
        read, _ = self.attention(q, tokens, tokens, need_weights=False)
        both = torch.cat([read.flatten(1), z.mean(1)], dim=1)  # the averaged token keeps the linear probe's view
        return self.classifier(self.dropout(self.out_norm(both)))


@dataclass
class AttentiveHead:
    """A fitted attentive probe: tokens standardised per channel (mean, std (C,)), then the network's
    weights (``state``, numpy arrays by parameter name) and its shape (``config``)."""

    mean: np.ndarray
    std: np.ndarray
    state: dict[str, np.ndarray]
    config: dict = field(default_factory=dict)

    def _net(self) -> _AttentiveNet:
        c = self.config
        net = _AttentiveNet(c["n_tokens"], c["channels"], c["n_classes"], c["n_queries"], c["n_heads"], 0.0)
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.state.items()})
        return net.eval()

    def logits(self, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """(N, T, C) tokens -> (N, n_classes) logits in fp32."""
        x = np.asarray(x, dtype=np.float32)
        want = (self.config["n_tokens"], self.config["channels"])
        if x.ndim != 3 or x.shape[1:] != want:
            raise DiffprobeError(f"the attentive head reads (N, {want[0]}, {want[1]}) tokens, got {x.shape}")
        net, out = self._net(), []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                out.append(net(torch.from_numpy((x[s:s + batch_size] - self.mean) / self.std)).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config["n_classes"]), np.float32)


class AttentiveProbe:
    """Fit an ``AttentiveHead`` with AdamW and a one-cycle schedule; the epoch with the lowest validation
    log loss is kept. ``precision`` as everywhere (``utils.resolve_precision``); the loss stays fp32."""

    def __init__(self, *, n_queries: int = 4, n_heads: int = 4, dropout: float = 0.3, epochs: int = 30,
                 lr: float = 1e-3, weight_decay: float = 0.05, batch_size: int = 256, seed: int = 0,
                 precision: str = "auto", device: torch.device | None = None):
        if min(n_queries, n_heads, epochs, batch_size) < 1 or not lr > 0 or not 0 <= dropout < 1:
            raise DiffprobeError("n_queries, n_heads, epochs and batch_size must be positive integers, lr positive "
                                 "and dropout in [0, 1)")
        self.n_queries, self.n_heads, self.dropout, self.epochs = n_queries, n_heads, dropout, epochs
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.precision, self.device = precision, device or default_device()
        self.history_: list[dict] = []

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            n_classes: int | None = None) -> AttentiveHead:
        """x_train (N, T, C), y_train (N,); x_val (M, T, C), y_val (M,) chooses the epoch."""
        x_train = np.asarray(x_train, np.float32)
        if x_train.ndim != 3:
            raise DiffprobeError(f"an attentive probe reads (N, T, C) tokens, got {x_train.shape}: "
                                 "turn gridN features into tokens with grid_tokens")
        if len(y_val) == 0:
            raise DiffprobeError("the val part is empty: the attentive probe is early-stopped on val")
        _, n_tokens, channels = x_train.shape
        if channels % self.n_heads:
            raise DiffprobeError(f"n_heads ({self.n_heads}) must divide the number of channels ({channels})")
        n_classes = int(n_classes or max(y_train.max(), y_val.max()) + 1)
        mean, std = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-6
        dev = self.device
        xtr = torch.from_numpy((x_train - mean) / std).to(dev)
        xva = torch.from_numpy((np.asarray(x_val, np.float32) - mean) / std).to(dev)
        ytr, yva = torch.as_tensor(y_train, device=dev), torch.as_tensor(y_val, device=dev)
        torch.manual_seed(self.seed)
        g = torch.Generator().manual_seed(self.seed)
        net = _AttentiveNet(n_tokens, channels, n_classes, self.n_queries, self.n_heads, self.dropout).to(dev)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n = len(xtr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.epochs * -(-n // self.batch_size),
                                                    pct_start=0.1)
        best_loss, best_state, self.history_ = float("inf"), None, []
        for epoch in range(self.epochs):
            net.train()
            perm = torch.randperm(n, generator=g).to(dev)
            for s in range(0, n, self.batch_size):
                b = perm[s:s + self.batch_size]
                with autocast(dev, self.precision):
                    logits = net(xtr[b])
                loss = F.cross_entropy(logits.float(), ytr[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            net.eval()
            with torch.no_grad():
                lv = torch.cat([net(xva[s:s + 2048]).float() for s in range(0, len(xva), 2048)])
                vloss, vacc = float(F.cross_entropy(lv, yva)), float((lv.argmax(1) == yva).float().mean())
            self.history_.append({"epoch": epoch + 1, "val_log_loss": vloss, "val_accuracy": vacc})
            if vloss < best_loss:
                best_loss = vloss
                best_state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
        best = min(self.history_, key=lambda h: h["val_log_loss"])
        config = {"n_tokens": n_tokens, "channels": channels, "n_classes": n_classes, "n_queries": self.n_queries,
                  "n_heads": self.n_heads, "dropout": self.dropout, "weight_decay": self.weight_decay, **best}
        return AttentiveHead(mean, std, best_state, config)

"""An attentive probe: a few learned queries read the spatial tokens of one (block, timestep) map.

Global average pooling throws away where things are in the map. An attentive probe (as in recent
efficient-probing work) keeps the backbone frozen and lets ``n_queries`` learned queries cross-attend over
the map's tokens, then classifies their outputs together with the averaged token, so it can only add to
what the average pooling of the paper's linear probe reads. It is trained on cached features
(pooling ``grid4`` or ``grid8``: 16 or 64 tokens per map), early-stopped on validation log loss.

Several pairs are read together by concatenating their tokens in ``groups`` of equal size (one group per
pair: each group's average is classified beside the queries' reads, and the learned position of a token
also says which pair it comes from); ``extra`` (N, K) per-image values, such as the object's size
measurements, join the classifier's input.

Shapes: tokens ``x`` are float32 (N, T, C): N images, T tokens, C channels; a ``gridN`` feature vector
(N, C*N*N) becomes tokens with ``grid_tokens``. Classes are integer labels 0..C-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..config.probe import AttentiveProbeConfig
from ..utils import DiffprobeError, default_device
from .training import fit_head

__all__ = ["AttentiveHead", "AttentiveProbe", "AttentiveProbeConfig", "grid_tokens"]


def grid_tokens(x: np.ndarray, grid: int) -> np.ndarray:
    """(N, C*grid*grid) channel-major ``gridN`` features (``backbones.base.pool``) -> (N, grid*grid, C) tokens."""
    x = np.asarray(x)
    t = grid * grid
    if x.ndim != 2 or x.shape[1] % t:
        raise DiffprobeError(f"grid{grid} features have C*{t} columns; got shape {x.shape}")
    return x.reshape(len(x), -1, t).transpose(0, 2, 1)


class _AttentiveNet(torch.nn.Module):
    def __init__(self, n_tokens: int, channels: int, n_classes: int, n_queries: int, n_heads: int, dropout: float,
                 groups: int = 1, n_extra: int = 0, hidden: int = 0):
        super().__init__()
        self.groups = groups
        self.position = torch.nn.Parameter(torch.randn(n_tokens, channels) * 0.02)
        self.norm = torch.nn.LayerNorm(channels)
        self.queries = torch.nn.Parameter(torch.randn(n_queries, channels) * 0.02)
        self.attention = torch.nn.MultiheadAttention(channels, n_heads, batch_first=True)
        width = (n_queries + groups) * channels
        self.out_norm = torch.nn.LayerNorm(width)
        self.dropout = torch.nn.Dropout(dropout)
        # hidden > 0: one GELU layer before the classes, as the MLP head (probe.mlp) has on pooled features
        self.classifier = (torch.nn.Sequential(torch.nn.Linear(width + n_extra, hidden), torch.nn.GELU(),
                                               torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_classes))
                           if hidden else torch.nn.Linear(width + n_extra, n_classes))

    def forward(self, z: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.norm(z + self.position)
        q = self.queries.expand(len(z), -1, -1)
        read, _ = self.attention(q, tokens, tokens, need_weights=False)
        # each group's averaged token keeps the view of the linear probe on the global average
        averages = z.reshape(len(z), self.groups, -1, z.shape[2]).mean(2).flatten(1)
        read = self.out_norm(torch.cat([read.flatten(1), averages], dim=1))
        # extra values arrive standardised; a shared LayerNorm would rescale them by each image's token spread
        return self.classifier(self.dropout(read if extra is None else torch.cat([read, extra], dim=1)))


@dataclass
class AttentiveHead:
    """A fitted attentive probe: tokens standardised per channel (mean, std (C,)) and the extra values per
    column (extra_mean, extra_std (K,)), then the network's weights (``state``, numpy arrays by parameter
    name) and its shape (``config``)."""

    mean: np.ndarray
    std: np.ndarray
    state: dict[str, np.ndarray]
    config: dict = field(default_factory=dict)
    extra_mean: np.ndarray | None = None
    extra_std: np.ndarray | None = None

    def _net(self) -> _AttentiveNet:
        c = self.config
        net = _AttentiveNet(c["n_tokens"], c["channels"], c["n_classes"], c["n_queries"], c["n_heads"], 0.0,
                            c.get("groups", 1), c.get("n_extra", 0), c.get("hidden", 0))
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.state.items()})
        return net.eval()

    def logits(self, x: np.ndarray, extra: np.ndarray | None = None, batch_size: int = 2048) -> np.ndarray:
        """(N, T, C) tokens (and (N, K) extra values if the head was fitted with them) -> (N, n_classes)
        logits in fp32."""
        x = np.asarray(x, dtype=np.float32)
        want = (self.config["n_tokens"], self.config["channels"])
        if x.ndim != 3 or x.shape[1:] != want:
            raise DiffprobeError(f"the attentive head reads (N, {want[0]}, {want[1]}) tokens, got {x.shape}")
        n_extra = self.config.get("n_extra", 0)
        if n_extra and (extra is None or np.shape(extra) != (len(x), n_extra)):
            raise DiffprobeError(f"the attentive head also reads (N, {n_extra}) extra values, got "
                                 f"{None if extra is None else np.shape(extra)}")
        net, out = self._net(), []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                e = (torch.from_numpy((np.asarray(extra[s:s + batch_size], np.float32) - self.extra_mean)
                                      / self.extra_std) if n_extra else None)
                out.append(net(torch.from_numpy((x[s:s + batch_size] - self.mean) / self.std), e).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config["n_classes"]), np.float32)


class AttentiveProbe:
    """Fit an ``AttentiveHead`` with AdamW and a one-cycle schedule; the epoch with the lowest validation
    log loss is kept. ``precision`` as everywhere (``utils.resolve_precision``); the loss stays fp32."""

    def __init__(self, *, n_queries: int = AttentiveProbeConfig.n_queries, n_heads: int = AttentiveProbeConfig.n_heads,
                 dropout: float = AttentiveProbeConfig.dropout, epochs: int = AttentiveProbeConfig.epochs,
                 lr: float = AttentiveProbeConfig.lr, weight_decay: float = AttentiveProbeConfig.weight_decay,
                 batch_size: int = AttentiveProbeConfig.batch_size, seed: int = AttentiveProbeConfig.seed,
                 hidden: int = AttentiveProbeConfig.hidden, precision: str = AttentiveProbeConfig.precision,
                 device: torch.device | None = None):
        # A value out of its declared bounds is refused here, naming the setting, not deep in the fit.
        AttentiveProbeConfig(n_queries=n_queries, n_heads=n_heads, dropout=dropout, epochs=epochs, lr=lr,
                             weight_decay=weight_decay, batch_size=batch_size, seed=seed, hidden=hidden,
                             precision=precision)
        self.n_queries, self.n_heads, self.dropout, self.epochs = n_queries, n_heads, dropout, epochs
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.hidden, self.precision, self.device = hidden, precision, device or default_device()
        self.history_: list[dict] = []

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            n_classes: int | None = None, *, groups: int = 1, extra_train: np.ndarray | None = None,
            extra_val: np.ndarray | None = None) -> AttentiveHead:
        """x_train (N, T, C), y_train (N,); x_val (M, T, C), y_val (M,) chooses the epoch. ``groups``: the T
        tokens are that many equal groups (pairs); extra_train (N, K) / extra_val (M, K): per-image values
        beside the tokens."""
        x_train = np.asarray(x_train, np.float32)
        if x_train.ndim != 3:
            raise DiffprobeError(f"an attentive probe reads (N, T, C) tokens, got {x_train.shape}: "
                                 "turn gridN features into tokens with grid_tokens")
        if len(y_val) == 0:
            raise DiffprobeError("the val part is empty: the attentive probe is early-stopped on val")
        _, n_tokens, channels = x_train.shape
        if groups < 1 or n_tokens % groups:
            raise DiffprobeError(f"{n_tokens} tokens cannot form {groups} equal groups")
        if (extra_train is None) != (extra_val is None):
            raise DiffprobeError("pass extra values for both train and val, or for neither")
        if channels % self.n_heads:
            raise DiffprobeError(f"n_heads ({self.n_heads}) must divide the number of channels ({channels})")
        n_classes = int(n_classes or max(y_train.max(), y_val.max()) + 1)
        mean, std = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-6
        dev = self.device
        xtr = torch.from_numpy((x_train - mean) / std).to(dev)
        xva = torch.from_numpy((np.asarray(x_val, np.float32) - mean) / std).to(dev)
        ytr, yva = torch.as_tensor(y_train, device=dev), torch.as_tensor(y_val, device=dev)
        n_extra, extra_mean, extra_std, etr, eva = 0, None, None, None, None
        if extra_train is not None:
            extra_train = np.asarray(extra_train, np.float32)
            n_extra = extra_train.shape[1]
            extra_mean, extra_std = extra_train.mean(0), extra_train.std(0) + 1e-6
            etr = torch.from_numpy((extra_train - extra_mean) / extra_std).to(dev)
            eva = torch.from_numpy((np.asarray(extra_val, np.float32) - extra_mean) / extra_std).to(dev)
        state, self.history_ = fit_head(
            lambda: _AttentiveNet(n_tokens, channels, n_classes, self.n_queries, self.n_heads, self.dropout, groups,
                                  n_extra, self.hidden), (xtr, etr), ytr, (xva, eva), yva, epochs=self.epochs,
            lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, seed=self.seed,
            precision=self.precision)
        best_state = {k: v.numpy().copy() for k, v in state.items()}
        best = min(self.history_, key=lambda h: h["val_log_loss"])
        config = {"n_tokens": n_tokens, "channels": channels, "n_classes": n_classes, "n_queries": self.n_queries,
                  "n_heads": self.n_heads, "groups": groups, "n_extra": n_extra, "hidden": self.hidden,
                  "dropout": self.dropout,
                  "weight_decay": self.weight_decay, **best}
        return AttentiveHead(mean, std, best_state, config, extra_mean, extra_std)

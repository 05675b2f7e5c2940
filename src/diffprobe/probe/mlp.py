"""A one-hidden-layer probe on frozen features: the readout beyond the paper's linear protocol.

The linear probe per (block, timestep) pair stays the paper's protocol; this head reads several
pairs and the object's size metadata at once, where classes differ by combinations that a linear
map misses (measured on NDSB: see ``experiments/accuracy_levers/accuracy_levers.py``). It is small (one hidden
layer), trained in seconds to minutes on cached features, early-stopped on validation log loss,
and its width, dropout and weight decay are chosen on validation data only.

Shapes: ``x`` is float32 (N, D); classes are integer labels 0..C-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..config.probe import MLPProbeConfig
from ..utils import DiffprobeError, default_device
from .linear import LinearHead
from .training import fit_head



@dataclass
class MLPHead:
    """A fitted head: logits = gelu(z @ w1 + b1) @ w2 + b2 on standardised features z = (x - mean) / std.

    mean, std (D,); w1 (D, H), b1 (H,); w2 (H, C), b2 (C,).
    """

    mean: np.ndarray
    std: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    config: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return self.w2.shape[1]

    def logits(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """(N, D) features -> (N, C) logits (fp32, whatever precision the features came in)."""
        return self._forward(x, batch_size, output=True)

    def hidden(self, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        """(N, D) features -> (N, H) hidden activations: what the output layer reads, a representation
        shaped by the training labels (few-shot adaptation can fit a new output layer on it)."""
        return self._forward(x, batch_size, output=False)

    def with_output(self, out: LinearHead) -> "MLPHead":
        """This head's hidden layer under a new output layer: ``out`` is a linear head fitted on ``hidden()``'s
        activations (its standardisation folded into the weights), so logits = out.logits(self.hidden(x))."""
        if out.weight.shape[0] != self.w1.shape[1]:
            raise DiffprobeError(f"the new output layer reads {out.weight.shape[0]} inputs; this head has "
                                 f"{self.w1.shape[1]} hidden units")
        w2 = (out.weight / out.std[:, None]).astype(np.float32)
        b2 = (out.bias - (out.mean / out.std) @ out.weight).astype(np.float32)
        return MLPHead(self.mean, self.std, self.w1, self.b1, w2, b2, config={**self.config, "output": "refitted"})

    def _forward(self, x: np.ndarray, batch_size: int, *, output: bool) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise DiffprobeError(f"the head reads (N, {self.mean.shape[0]}) features, got {x.shape}")
        t = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in ("mean", "std", "w1", "b1",
                                                                              "w2", "b2")}
        out = []
        with torch.no_grad():
            for s in range(0, len(x), batch_size):
                z = (torch.from_numpy(x[s:s + batch_size]) - t["mean"]) / t["std"]
                h = F.gelu(z @ t["w1"] + t["b1"])
                out.append((h @ t["w2"] + t["b2"] if output else h).numpy())
        width = self.n_classes if output else self.w1.shape[1]
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k), dtype=np.float32))
                for k in ("mean", "std", "w1", "b1", "w2", "b2")}

    @classmethod
    def average(cls, heads: list["MLPHead"]) -> "MLPHead":
        """The mean of several heads' logits as one head: their hidden units side by side, the output
        weights divided by their number. Heads must share the standardisation (fitted on the same data)."""
        if not heads:
            raise DiffprobeError("no heads to average")
        if len(heads) == 1:
            return heads[0]
        if any(not (np.array_equal(h.mean, heads[0].mean) and np.array_equal(h.std, heads[0].std)) for h in heads):
            raise DiffprobeError("heads standardised on different data cannot be averaged into one")
        m = len(heads)
        return cls(heads[0].mean, heads[0].std, np.concatenate([h.w1 for h in heads], 1),
                   np.concatenate([h.b1 for h in heads]), np.concatenate([h.w2 for h in heads], 0) / m,
                   np.mean([h.b2 for h in heads], 0), config={**heads[0].config, "ensemble": m})

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], config: dict | None = None) -> "MLPHead":
        missing = {"mean", "std", "w1", "b1", "w2", "b2"} - set(t)
        if missing:
            raise DiffprobeError(f"MLP head tensors missing: {sorted(missing)}")
        return cls(*(t[k].float().numpy() for k in ("mean", "std", "w1", "b1", "w2", "b2")), config=config or {})


def _standardiser(x: np.ndarray, tail: tuple[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of x (N, D) per column, the last ``tail[0]`` columns' std divided by ``tail[1]`` (so that
    they come out ``tail[1]`` times larger): the head stores them, and predicts on raw inputs unchanged."""
    k, weight = int(tail[0]), float(tail[1])
    if not 0 <= k <= x.shape[1] or not weight > 0:
        raise DiffprobeError(f"tail must be (columns in 0..{x.shape[1]}, a positive weight), got {tail!r}")
    mean, std = x.mean(0), x.std(0) + 1e-6
    if k:
        std[-k:] /= weight
    return mean, std


class MLPProbe:
    """Fit an ``MLPHead``; each (hidden, dropout, weight decay) of the grid is trained and the one with the
    lowest validation log loss kept (its best epoch). ``precision`` as everywhere (``utils.resolve_precision``).

    ``ensemble``: that many heads of the chosen grid point, from seeds ``seed, seed + 1, ...``, each
    early-stopped on val, averaged into one head (``MLPHead.average``): the same predict cost as one head
    of ``ensemble`` times the width, lower variance and better calibrated probabilities.
    """

    # Defaults: config.probe.MLPProbeConfig (chosen on NDSB val; experiments/accuracy_levers/accuracy_levers.py).
    def __init__(self, *, hidden: tuple[int, ...] = MLPProbeConfig.hidden,
                 dropout: tuple[float, ...] = MLPProbeConfig.dropout,
                 weight_decays: tuple[float, ...] = MLPProbeConfig.weight_decays, epochs: int = MLPProbeConfig.epochs,
                 lr: float = MLPProbeConfig.lr, batch_size: int = MLPProbeConfig.batch_size,
                 label_smoothing: float = MLPProbeConfig.label_smoothing,
                 input_dropout: float = MLPProbeConfig.input_dropout, seed: int = MLPProbeConfig.seed,
                 ensemble: int = MLPProbeConfig.ensemble, precision: str = MLPProbeConfig.precision,
                 device: torch.device | None = None, progress: bool = False):
        # A value out of its declared bounds is refused here, naming the setting, not deep in the fit.
        MLPProbeConfig(hidden=hidden, dropout=dropout, weight_decays=weight_decays, epochs=epochs, lr=lr,
                       batch_size=batch_size, label_smoothing=label_smoothing, input_dropout=input_dropout, seed=seed,
                       ensemble=ensemble, precision=precision)
        self.hidden, self.dropout, self.weight_decays = tuple(hidden), tuple(dropout), tuple(weight_decays)
        self.epochs, self.lr, self.batch_size, self.label_smoothing = epochs, lr, batch_size, label_smoothing
        self.input_dropout, self.seed, self.ensemble, self.precision = input_dropout, seed, ensemble, precision
        self.device, self.progress = device or default_device(), progress
        self.history_: list[dict] = []

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
            n_classes: int | None = None, *, tail: tuple[int, float] = (0, 1.0)) -> MLPHead:
        """x_train (N, D), y_train (N,); x_val (M, D), y_val (M,) selects the epoch and the grid point.

        ``tail`` (k, w): the last k columns weighted w times after standardisation (in fusion, the object
        metadata beside the features); recorded in the head's config, so ``refit`` weighs them alike."""
        if len(y_val) == 0:
            raise DiffprobeError("the val part is empty: the MLP head is selected and early-stopped on val")
        n_classes = int(n_classes or max(y_train.max(), y_val.max()) + 1)
        x_train = np.asarray(x_train, np.float32)
        mean, std = _standardiser(x_train, tail)
        dev = self.device
        xtr = torch.from_numpy((x_train - mean) / std).to(dev)
        xva = torch.from_numpy((np.asarray(x_val, np.float32) - mean) / std).to(dev)
        ytr, yva = torch.as_tensor(y_train, device=dev), torch.as_tensor(y_val, device=dev)
        best = None
        self.history_ = []
        for h in self.hidden:
            for p in self.dropout:
                for wd in self.weight_decays:
                    loss, acc, epoch, params = self._fit_one(xtr, ytr, xva, yva, n_classes, h, p, wd, self.seed)
                    self.history_.append({"hidden": h, "dropout": p, "weight_decay": wd, "val_log_loss": loss,
                                          "val_accuracy": acc, "epoch": epoch})
                    if best is None or loss < best[0]:
                        best = (loss, params, {"hidden": h, "dropout": p, "weight_decay": wd, "epoch": epoch,
                                               "val_log_loss": loss, "val_accuracy": acc,
                                               **({"tail": [int(tail[0]), float(tail[1])]} if tail[0] else {})})
        _, params, cfg = best
        heads = [MLPHead(mean, std, *params, config=cfg)]
        for seed in range(self.seed + 1, self.seed + self.ensemble):
            heads.append(MLPHead(mean, std, *self._fit_one(xtr, ytr, xva, yva, n_classes, cfg["hidden"],
                                                           cfg["dropout"], cfg["weight_decay"], seed)[3], config=cfg))
        return MLPHead.average(heads)

    def refit(self, x: np.ndarray, y: np.ndarray, head: MLPHead, n_classes: int | None = None) -> MLPHead:
        """``head``'s settings (chosen on val by ``fit``) trained again on more labelled data, x (N, D), y (N,),
        typically train + val: no data is left to stop on, so each run follows the same schedule and stops at
        the epoch val chose. ``ensemble`` heads from seeds ``seed, seed + 1, ...``, averaged."""
        cfg = head.config
        if "epoch" not in cfg:
            raise DiffprobeError("refit needs a head fitted by MLPProbe.fit (its config names the chosen epoch)")
        if not 1 <= cfg["epoch"] <= self.epochs:
            raise DiffprobeError(f"the head stopped at epoch {cfg['epoch']}, outside this probe's {self.epochs} epochs")
        n_classes = int(n_classes or head.n_classes)
        x = np.asarray(x, np.float32)
        mean, std = _standardiser(x, tuple(cfg.get("tail", (0, 1.0))))
        xt = torch.from_numpy((x - mean) / std).to(self.device)
        yt = torch.as_tensor(y, device=self.device)
        config = {**cfg, "refit_images": len(y)}
        return MLPHead.average([
            MLPHead(mean, std, *self._fit_one(xt, yt, None, None, n_classes, cfg["hidden"], cfg["dropout"],
                                              cfg["weight_decay"], seed, stop_epoch=cfg["epoch"])[3], config=config)
            for seed in range(self.seed, self.seed + self.ensemble)])

    def _fit_one(self, xtr, ytr, xva, yva, n_classes, hidden, dropout, wd, seed, stop_epoch=None):
        """One run of the schedule: the epoch with the lowest val log loss, or (no val) epoch ``stop_epoch``."""
        d = xtr.shape[1]

        def build():
            return torch.nn.Sequential(torch.nn.Dropout(self.input_dropout), torch.nn.Linear(d, hidden),
                                       torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, n_classes))
        val = None if xva is None else (xva,)
        state, history = fit_head(build, (xtr,), ytr, val, yva, epochs=self.epochs, lr=self.lr, weight_decay=wd,
                                  batch_size=self.batch_size, seed=seed, precision=self.precision,
                                  label_smoothing=self.label_smoothing, stop_epoch=stop_epoch,
                                  val_batch=max(1, len(xtr) if yva is None else len(yva)))
        best = min(history, key=lambda h: h["val_log_loss"]) if history else \
            {"val_log_loss": float("nan"), "val_accuracy": float("nan"), "epoch": stop_epoch}
        w1, b1, w2, b2 = (state[k] for k in ("1.weight", "1.bias", "4.weight", "4.bias"))
        return best["val_log_loss"], best["val_accuracy"], best["epoch"], (w1.T.numpy().copy(), b1.numpy(),
                                                                            w2.T.numpy().copy(), b2.numpy())

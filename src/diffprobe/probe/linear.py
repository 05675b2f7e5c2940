"""Batched linear probes: every (feature set x weight decay) probe trained together.

Feature sets of the same width are stacked into one (P, N, D) tensor and trained with one
einsum per minibatch, so a grid of 50+ probes costs a handful of matrix multiplies per step,
not a Python loop of fits. Each probe is early-stopped on its own validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import DiffprobeError, default_device


@dataclass
class LinearHead:
    """A fitted linear probe on standardised features: logits = ((x - mean) / std) @ weight + bias.

    weight (D, C), bias (C,), mean (D,), std (D,).
    """

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    weight_decay: float = 0.0
    epochs: int = 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.std
        return z @ self.weight + self.bias

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k), dtype=np.float32))
                for k in ("weight", "bias", "mean", "std")}


class GridProbe:
    """Train one multinomial logistic-regression probe per feature set, all at once.

    Each feature set is trained at every value of ``weight_decays``; the value with the best
    validation accuracy is kept. Parameters: Adam with cosine decay, ``epochs`` at most, early
    stopping after ``patience`` epochs without improvement (only in the second half of the
    schedule), optional inverse-frequency class weights.
    """

    # Defaults measured on NDSB (121 classes, 17k train images): within 1 point of a fully converged
    # scikit-learn LogisticRegression; smaller weight decays were always chosen on val.
    def __init__(self, *, epochs: int = 80, lr: float = 1e-2, batch_size: int = 256,
                 weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3), class_balanced: bool = False,
                 patience: int = 15, seed: int = 0, device: torch.device | None = None):
        self.epochs, self.lr, self.batch_size = epochs, lr, batch_size
        self.weight_decays = tuple(weight_decays)
        self.class_balanced, self.patience, self.seed = class_balanced, patience, seed
        self.device = device or default_device()

    def fit(self, train: list[np.ndarray], y_train: np.ndarray, val: list[np.ndarray], y_val: np.ndarray,
            n_classes: int) -> list[LinearHead]:
        """train[i]: (N_train, D_i) features of set i; val[i]: (N_val, D_i). Returns one head per set."""
        if len(train) != len(val):
            raise DiffprobeError("train and val need the same feature sets")
        if len(y_val) == 0:
            raise DiffprobeError("the val part is empty: probes are selected and early-stopped on val")
        heads: list[LinearHead | None] = [None] * len(train)
        groups: dict[int, list[int]] = {}
        for i, x in enumerate(train):
            groups.setdefault(x.shape[1], []).append(i)
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float32)
        cw = None
        if self.class_balanced:
            cw = torch.tensor(np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0),
                              dtype=torch.float32, device=self.device)
        for dim, idx in groups.items():
            for i, h in zip(idx, self._fit_group([train[i] for i in idx], y_train, [val[i] for i in idx], y_val,
                                                 n_classes, cw)):
                heads[i] = h
        return heads

    def _fit_group(self, train, y_train, val, y_val, n_classes, class_weight):
        dev = self.device
        mean = [x.mean(0, dtype=np.float64).astype(np.float32) for x in train]
        std = [np.maximum(x.std(0, dtype=np.float64).astype(np.float32), 1e-6) for x in train]
        xtr = torch.stack([torch.from_numpy((np.asarray(x, np.float32) - m) / s) for x, m, s in zip(train, mean, std)]
                          ).to(dev)
        xva = torch.stack([torch.from_numpy((np.asarray(x, np.float32) - m) / s) for x, m, s in zip(val, mean, std)]
                          ).to(dev)
        ytr = torch.as_tensor(y_train, device=dev)
        yva = torch.as_tensor(y_val, device=dev)
        p, n, d = xtr.shape
        w_n = len(self.weight_decays)
        gen = torch.Generator().manual_seed(self.seed)
        weight = torch.zeros(p, w_n, d, n_classes, device=dev, requires_grad=True)
        bias = torch.zeros(p, w_n, n_classes, device=dev, requires_grad=True)
        wd = torch.tensor(self.weight_decays, device=dev).view(1, w_n, 1, 1)
        opt = torch.optim.Adam([weight, bias], lr=self.lr)
        best_acc = torch.full((p, w_n), -1.0, device=dev)
        best_w, best_b = weight.detach().clone(), bias.detach().clone()
        best_epoch = torch.zeros(p, w_n, dtype=torch.long)
        stale = 0
        # Small training sets still get at least 16 optimizer steps per epoch.
        batch = min(self.batch_size, max(64, -(-n // 16)))
        # Cosine decay to zero over the full budget: Adam then settles into the optimum instead of
        # hovering around it (early stopping still keeps each probe's best val epoch).
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs * -(-n // batch))
        for epoch in range(self.epochs):
            perm = torch.randperm(n, generator=gen).to(dev)
            for s in range(0, n, batch):
                b = perm[s : s + batch]
                logits = torch.einsum("pbd,pwdc->pwbc", xtr[:, b], weight) + bias.unsqueeze(2)
                target = ytr[b].expand(p, w_n, -1)
                ce = F.cross_entropy(logits.reshape(-1, n_classes), target.reshape(-1), weight=class_weight,
                                     reduction="none").view(p, w_n, -1).mean(-1)
                loss = ce.sum() + 0.5 * (wd * weight.pow(2)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            with torch.no_grad():
                acc = self._accuracy(xva, yva, weight, bias)
                better = acc > best_acc
                if better.any():
                    best_acc = torch.where(better, acc, best_acc)
                    best_w[better] = weight.detach()[better]
                    best_b[better] = bias.detach()[better]
                    best_epoch[better.cpu()] = epoch + 1
                    stale = 0
                else:
                    stale += 1
            # Val accuracy is noisy while the learning rate is high and its best comes as it decays,
            # so stopping early in the first half cut single-set groups off (a fused 768-dim set
            # stopped at epoch 25 and lost 4 points on NDSB).
            if stale >= self.patience and epoch + 1 >= self.epochs // 2:
                break
        choice = best_acc.argmax(dim=1).cpu()  # best weight decay per feature set, chosen on val
        heads = []
        for i in range(p):
            j = int(choice[i])
            heads.append(LinearHead(best_w[i, j].cpu().numpy(), best_b[i, j].cpu().numpy(), mean[i], std[i],
                                    float(self.weight_decays[j]), int(best_epoch[i, j])))
        return heads

    def _accuracy(self, x, y, weight, bias, chunk: int = 4096):
        correct = torch.zeros(weight.shape[:2], device=x.device)
        for s in range(0, x.shape[1], chunk):
            logits = torch.einsum("pbd,pwdc->pwbc", x[:, s : s + chunk], weight) + bias.unsqueeze(2)
            correct += (logits.argmax(-1) == y[s : s + chunk]).float().sum(-1)
        return correct / x.shape[1]

"""Batched linear probes: every (feature set x weight decay) probe trained together.

Feature sets of the same width are stacked into one (P, N, D) tensor and trained with one
batched matmul per minibatch, so a grid of 50+ probes costs a handful of matrix multiplies per step,
not a Python loop of fits. Each probe is early-stopped on its own validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config.probe import GridProbeConfig
from ..utils import DiffprobeError, autocast, default_device



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
    schedule), optional inverse-frequency class weights. ``whiten`` PCA-whitens each standardised feature
    set first (the value is added to the eigenvalues of its correlation matrix, so directions without
    variance are not blown up; None: no whitening). ``precision`` (auto | fp32 | bf16) of the training matmuls:
    auto is bf16 autocast only where it is faster (measured: utils.resolve_precision); weights, Adam state, the loss and the validation
    accuracy that selects each probe stay fp32.
    """

    # Defaults: config.probe.GridProbeConfig (chosen on NDSB val accuracy; see there).
    def __init__(self, *, epochs: int = GridProbeConfig.epochs, lr: float = GridProbeConfig.lr,
                 batch_size: int = GridProbeConfig.batch_size,
                 weight_decays: tuple[float, ...] = GridProbeConfig.weight_decays,
                 class_balanced: bool = GridProbeConfig.class_balanced, patience: int = GridProbeConfig.patience,
                 seed: int = GridProbeConfig.seed, precision: str = GridProbeConfig.precision,
                 whiten: float | None = GridProbeConfig.whiten, device: torch.device | None = None):
        self.epochs, self.lr, self.batch_size, self.precision, self.whiten = epochs, lr, batch_size, precision, whiten
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
        xtr, mean, std = _stack_standardised(train, dev)
        xva = _stack_standardised(val, dev, mean, std)[0]
        ytr = torch.as_tensor(y_train, device=dev)
        yva = torch.as_tensor(y_val, device=dev)
        p, n, d = xtr.shape
        w_n, c = len(self.weight_decays), n_classes
        proj = None
        if self.whiten is not None:
            # PCA-whitening (shrunk so near-constant directions are not blown up) makes the problem well
            # conditioned: Adam then converges in far fewer epochs. Weights are mapped back at the end.
            cov = torch.stack([xtr[i].T @ xtr[i] for i in range(p)]) / n  # per set: no transposed copy
            evals, evecs = torch.linalg.eigh(cov)
            proj = evecs / (evals.clamp_min(0) + self.whiten).sqrt().unsqueeze(1)
            for i in range(p):  # one set at a time: no second copy of the whole group
                xtr[i], xva[i] = xtr[i] @ proj[i], xva[i] @ proj[i]
        gen = torch.Generator().manual_seed(self.seed)
        # One (D, W*C) matrix per feature set holds its W weight decays side by side, so a step is one
        # batched matmul with no layout copies; the L2 term is added to the gradient directly.
        weight = torch.zeros(p, d, w_n * c, device=dev, requires_grad=True)
        bias = torch.zeros(p, 1, w_n * c, device=dev, requires_grad=True)
        wd = torch.tensor(self.weight_decays, device=dev).repeat_interleave(c).view(1, 1, -1)
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
                with autocast(dev, self.precision):
                    logits = torch.baddbmm(bias, xtr[:, b], weight)
                target = ytr[b].view(1, -1, 1).expand(p, -1, w_n).reshape(-1)
                ce = F.cross_entropy(logits.float().view(-1, c), target, weight=class_weight, reduction="none")
                opt.zero_grad(set_to_none=True)
                ce.view(p, -1, w_n).mean(1).sum().backward()
                weight.grad.addcmul_(weight.detach(), wd)  # gradient of 0.5 * wd * |W|^2, per probe, no temporary
                opt.step()
                sched.step()
            with torch.no_grad():
                acc = self._accuracy(xva, yva, weight, bias, w_n)
                better = acc > best_acc
                if better.any():
                    best_acc = torch.where(better, acc, best_acc)
                    mask = better.repeat_interleave(c, dim=1).unsqueeze(1)  # (P, 1, W*C)
                    best_w = torch.where(mask, weight.detach(), best_w)
                    best_b = torch.where(mask, bias.detach(), best_b)
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
        if proj is not None:
            best_w = torch.bmm(proj, best_w)
        best_w, best_b = best_w.view(p, d, w_n, c).cpu(), best_b.view(p, w_n, c).cpu()
        heads = []
        for i in range(p):
            j = int(choice[i])
            heads.append(LinearHead(best_w[i, :, j].numpy().copy(), best_b[i, j].numpy().copy(), mean[i], std[i],
                                    float(self.weight_decays[j]), int(best_epoch[i, j])))
        return heads

    def _accuracy(self, x, y, weight, bias, w_n, chunk: int = 4096):
        """(P, W) validation accuracy of every probe."""
        correct = torch.zeros(weight.shape[0], w_n, device=x.device)
        for s in range(0, x.shape[1], chunk):
            logits = torch.baddbmm(bias, x[:, s : s + chunk], weight)
            pred = logits.view(*logits.shape[:2], w_n, -1).argmax(-1)  # (P, B, W)
            correct += (pred == y[s : s + chunk].view(1, -1, 1)).float().sum(1)
        return correct / x.shape[1]


def _stack_standardised(xs: list[np.ndarray], device: torch.device, mean: list[np.ndarray] | None = None,
                        std: list[np.ndarray] | None = None) -> tuple[torch.Tensor, list, list]:
    """(P, N, D) standardised copy of P feature sets, with the per-set mean and std it used (computed here when
    not given). Filled set by set, in place: peak memory is the result plus one set's column sums."""
    out = torch.empty(len(xs), *xs[0].shape, device=device)
    stats = mean is None
    mean, std = (mean or []), (std or [])
    for i, x in enumerate(xs):
        out[i] = torch.from_numpy(np.asarray(x, np.float32))
        if stats:
            m = out[i].mean(0)  # float32 (cascade-summed); a float64 mean would copy the whole set
            out[i].sub_(m)
            s = torch.linalg.vector_norm(out[i], dim=0).div_(max(1, len(x)) ** 0.5).clamp_min_(1e-6)
            mean.append(m.cpu().numpy())
            std.append(s.cpu().numpy())
        else:
            out[i].sub_(torch.from_numpy(mean[i]).to(device))
            s = torch.from_numpy(std[i]).to(device)
        out[i].div_(s)
    return out, mean, std

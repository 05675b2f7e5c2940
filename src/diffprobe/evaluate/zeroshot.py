"""Zero-shot classification from a frozen representation: no classifier is trained on labels.

Two readings of the second paper's "zero-shot" (METHOD.md, part 2, item 4), both here:

(a) **Prototypes and k-NN.** Representations are centred on the mean of the train part (an
    unlabelled statistic; a setting) and L2-normalised. A class prototype is the mean of k
    labelled references of that class from the train part (k = 1, 5, 10 or all; the k-shot
    draws are seeded and repeated over a few episodes); a test image takes the prototype of
    highest cosine similarity. k-NN: cosine neighbours in the train part, majority vote and
    similarity-weighted vote (exp(cos / T), as in DINO's k-NN evaluation).
(b) **Diffusion classifier** (Li et al., ICCV 2023, "Your diffusion model is secretly a
    zero-shot classifier"), RC-DiT only: condition the denoiser on each class's prototype (the
    mean raw r of its references, the space the denoiser was trained on) and choose the class
    of lowest denoising error ||eps - eps_hat(x_t, t, r_c)||^2, averaged over the same sampled
    (t, eps) for every class. Adaptive pruning: a few samples for every candidate, keep the
    best, more samples for the survivors, and so on (``schedule``).

Plus a binary detection task (a class or group of classes, by fnmatch pattern, against the
rest, like the paper's haematoma detection): two prototypes (positive vs rest), class
prototypes mapped to the groups, and k-NN, with accuracy and F1.

Any backbone works whose features give one representation: the RC-DiT's encoder, a baseline
(its single block), or the DDPM U-Net at a chosen (block, timestep).

The ``zeroshot`` command (the representation read from a model, every method evaluated, ``zeroshot.json`` and
``zeroshot.md`` written) is ``workflows.zeroshot.zeroshot``.
"""

from __future__ import annotations

import fnmatch
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.neighbors import NearestNeighbors
from tqdm.auto import tqdm

from ..backbones.base import Backbone, image_seeds
from ..backbones.ddpm_unet import DDPMBackbone, make_scheduler
from ..backbones.rcdit import RCDiTBackbone
from ..config.evaluate import DiffusionClassifierConfig, ZeroShotConfig
from ..data.dataset import to_model_input
from ..probe.metrics import chance_accuracy, classification_metrics
from ..utils import DiffprobeError, read_json, stable_seed

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# --- (a) prototypes and k-NN ---------------------------------------------------------------------------------

def normalise(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """(N, D) -> rows centred on ``mean`` (if given) and scaled to unit L2 norm."""
    x = np.asarray(x, dtype=np.float32)
    if mean is not None:
        x = x - mean
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def sample_references(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``shots`` random references per class (all of a class that has fewer; 0 = all images)."""
    if shots == 0:
        return np.arange(len(labels))
    picks = [rng.choice(idx, size=min(shots, len(idx)), replace=False)
             for c in np.unique(labels) for idx in [np.flatnonzero(labels == c)]]
    return np.sort(np.concatenate(picks))


def class_means(z: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean row per class: (C, D), and (C,) bool, False for classes without references (their row is 0)."""
    sums = np.zeros((n_classes, z.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, z)
    counts = np.bincount(labels, minlength=n_classes)
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32), counts > 0


def prototype_predict(ref_z: np.ndarray, ref_y: np.ndarray, query_z: np.ndarray, n_classes: int) -> np.ndarray:
    """Nearest prototype by cosine: normalised references (M, D) with labels, queries (N, D) -> (N,) labels."""
    protos, present = class_means(ref_z, ref_y, n_classes)
    sims = query_z @ normalise(protos).T
    sims[:, ~present] = -np.inf
    return sims.argmax(1)


def knn_predict(ref_z: np.ndarray, ref_y: np.ndarray, query_z: np.ndarray, n_classes: int, k: int = 20,
                temperature: float = 0.07) -> dict[str, np.ndarray]:
    """Cosine k-NN: {"majority": (N,), "weighted": (N,)}; weights exp(cos / temperature)."""
    k = min(k, len(ref_z))
    dist, idx = NearestNeighbors(n_neighbors=k, metric="cosine").fit(ref_z).kneighbors(query_z)
    rows = np.repeat(np.arange(len(query_z)), k)
    out = {}
    for name, w in (("majority", np.ones_like(dist)), ("weighted", np.exp((1 - dist) / temperature))):
        votes = np.zeros((len(query_z), n_classes))
        np.add.at(votes, (rows, ref_y[idx].ravel()), w.ravel())
        out[name] = votes.argmax(1)
    return out


def prototype_episodes(z_tr: np.ndarray, y_tr: np.ndarray, z_te: np.ndarray, y_te: np.ndarray, n_classes: int,
                       shots: tuple[int, ...], episodes: int, seed: int) -> dict[str, dict]:
    """Nearest-prototype metrics for every number of references per class in ``shots`` (0 = all train images):
    {"1" | "5" | ... | "all": the mean and standard deviation of each metric over ``episodes`` seeded draws of
    the references (one draw for all)}. z: normalised train (M, D) and test (N, D) rows, y their labels."""
    out = {}
    for k in shots:
        runs = []
        for ep in range(1 if k == 0 else episodes):
            refs = sample_references(y_tr, k, np.random.default_rng(stable_seed("shots", seed, k, ep)))
            runs.append(classification_metrics(y_te, prototype_predict(z_tr[refs], y_tr[refs], z_te, n_classes)))
        out["all" if k == 0 else str(k)] = _summary(runs)
    return out


def _summary(runs: list[dict]) -> dict:
    """Mean and standard deviation of each metric over episodes."""
    return {**{m: float(np.mean([r[m] for r in runs])) for m in runs[0]},
            **{f"{m}_std": float(np.std([r[m] for r in runs])) for m in runs[0]}, "episodes": len(runs)}


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, and F1 / precision / recall of the positive class (1)."""
    base = classification_metrics(y_true, y_pred)
    return {"accuracy": base["accuracy"], "balanced_accuracy": base["balanced_accuracy"],
            "f1": float(f1_score(y_true, y_pred, pos_label=1, zero_division=0)),
            "precision": float(precision_score(y_true, y_pred, pos_label=1, zero_division=0)),
            "recall": float(recall_score(y_true, y_pred, pos_label=1, zero_division=0))}


def positive_classes(classes: list[str], pattern: str) -> np.ndarray:
    """(C,) bool: the classes matching the fnmatch ``pattern``; an error when none or all match."""
    mask = np.array([fnmatch.fnmatchcase(c, pattern) for c in classes])
    if not mask.any():
        raise DiffprobeError(f"--positive {pattern!r} matches none of the {len(classes)} classes "
                             f"(e.g. {classes[:5]}); use an fnmatch pattern such as 'copepod_*'")
    if mask.all():
        raise DiffprobeError(f"--positive {pattern!r} matches every class; the binary task needs a rest")
    return mask


# --- (b) the diffusion classifier ----------------------------------------------------------------------------

@torch.no_grad()
def diffusion_classify(denoise: Denoiser, x0: torch.Tensor, prototypes: torch.Tensor, seeds: list[int],
                       schedule: tuple[tuple[int, int], ...], *, t_range: tuple[int, int] = (1, 1000),
                       batch_size: int = 512) -> tuple[np.ndarray, int]:
    """Class of lowest conditional denoising error, with adaptive pruning of candidates.

    denoise(x_t (N, 1, S, S), t (N,), r (N, R)) -> eps_hat (N, 1, S, S); x0 (B, 1, S, S) in [-1, 1];
    prototypes (C, R), one conditioning vector per candidate class, or (B, C, R), one per image and candidate;
    seeds: one per image, from which
    its (t, eps) samples are drawn (the same ones for every candidate). Returns the chosen
    candidate per image (B,) and the number of denoiser calls per image.
    """
    device = x0.device
    b_n, c_n = len(x0), prototypes.shape[-2]
    total = sum(n for n, _ in schedule)
    ts, eps = [], []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        ts.append(torch.randint(t_range[0], t_range[1], (total,), generator=g))
        eps.append(torch.randn((total, *x0.shape[1:]), generator=g))
    ts, eps = torch.stack(ts).to(device), torch.stack(eps).to(device)  # (B, total), (B, total, 1, S, S)
    a = make_scheduler().alphas_cumprod.to(device)[ts].view(b_n, total, 1, 1, 1)
    xt = a.sqrt() * x0[:, None] + (1 - a).sqrt() * eps
    cand = torch.arange(c_n, device=device).expand(b_n, c_n)  # surviving candidates per image
    err_sum = torch.zeros(b_n, c_n, device=device)
    done = calls = 0
    for n_new, keep in schedule:
        k_n = cand.shape[1]
        bi, si, ci = (g.flatten() for g in torch.meshgrid(torch.arange(b_n, device=device),
                                                          torch.arange(done, done + n_new, device=device),
                                                          torch.arange(k_n, device=device), indexing="ij"))
        err = torch.empty(len(bi), device=device)
        for i in range(0, len(bi), batch_size):
            b, s, c = bi[i:i + batch_size], si[i:i + batch_size], ci[i:i + batch_size]
            r = prototypes[b, cand[b, c]] if prototypes.dim() == 3 else prototypes[cand[b, c]]
            pred = denoise(xt[b, s], ts[b, s], r)
            err[i:i + batch_size] = (pred.float() - eps[b, s]).pow(2).flatten(1).mean(1)
        err_sum.scatter_add_(1, cand, err.view(b_n, n_new, k_n).sum(1))
        done, calls = done + n_new, calls + n_new * k_n
        # Every survivor has the same `done` samples, so error sums rank them like means.
        order = err_sum.gather(1, cand).argsort(dim=1, stable=True)[:, :min(keep, k_n)]
        cand = cand.gather(1, order)
    return cand[:, 0].cpu().numpy(), calls


def diagnostic_t_range(run: str | Path) -> tuple[int, int]:
    """The timestep bucket where an RC-DiT's denoiser uses r most: the largest relative conditioning gap
    (shuffled - own) / own among the buckets of ``summary.json``'s ``conditioning`` (``rcdit-pretrain``'s
    diagnostic of its final weights). There the denoising error depends most on which r it is given."""
    path = Path(run) / "summary.json"
    buckets = {k: v for k, v in (read_json(path).get("conditioning") or {}).items() if k != "all"} \
        if path.exists() else {}
    if not buckets:
        raise DiffprobeError(f"{path}: no conditioning diagnostic (trained before it was recorded?); give the "
                             f"diffusion classifier's timesteps as LOW,HIGH instead of 'auto'")
    best = max(buckets, key=lambda b: (buckets[b]["shuffled"] - buckets[b]["own"]) / buckets[b]["own"])
    lo, hi = best.split("-")
    return int(lo), int(hi)


def run_diffusion_classifier(backbone: RCDiTBackbone, images: np.ndarray, r_train: np.ndarray, y_train: np.ndarray,
                             n_classes: int, cfg: DiffusionClassifierConfig, *, seed: int = 0, precision: str = "auto",
                             image_batch: int = 16, progress: bool = True) -> dict:
    """Diffusion-classify uint8 images (N, S, S) against raw train r (M, R) with labels: each class scored with
    its prototype or, ``cfg.condition == "nearest"``, with its reference nearest to the image.

    Returns {"pred": (N,) labels, "calls_per_image", "exhaustive_calls_per_image", "seconds", "n_candidates",
    "t_range"}.
    """
    t_range = diagnostic_t_range(backbone.path) if cfg.t_range == "auto" else cfg.t_range
    refs = sample_references(y_train, cfg.shots, np.random.default_rng(stable_seed("dc-shots", seed)))
    protos, present = class_means(r_train[refs], y_train[refs], n_classes)
    classes = np.flatnonzero(present)
    prototypes = torch.from_numpy(protos[classes]).to(backbone.device)
    if cfg.condition == "nearest":  # each class's references, normalised once for every chunk
        mean = r_train.mean(0)
        by_class = [refs[y_train[refs] == c] for c in classes]
        z_by_class = [normalise(r_train[idx], mean) for idx in by_class]
    denoise = lambda xt, t, r: backbone.denoise(xt, t, r, precision=precision)  # noqa: E731
    preds, calls, t0 = [], 0, time.time()
    for start in tqdm(range(0, len(images), image_batch), desc="diffusion classifier", unit="batch",
                      disable=not progress, mininterval=2.0):
        chunk = images[start:start + image_batch]
        if cfg.condition == "nearest":
            z = normalise(backbone.encode(chunk, precision).cpu().numpy(), mean)
            nearest = np.stack([idx[(z @ zc.T).argmax(1)] for idx, zc in zip(by_class, z_by_class)], 1)  # (B, C)
            prototypes = torch.from_numpy(r_train[nearest]).to(backbone.device)
        pred, calls = diffusion_classify(denoise, to_model_input(chunk).to(backbone.device), prototypes,
                                         image_seeds(chunk, stable_seed("dc", seed)), cfg.schedule,
                                         t_range=t_range, batch_size=cfg.batch_size)
        preds.append(classes[pred])
    return {"pred": np.concatenate(preds), "calls_per_image": calls,
            "exhaustive_calls_per_image": cfg.samples * len(classes), "seconds": round(time.time() - t0, 1),
            "n_candidates": len(classes), "t_range": list(t_range)}


# --- the representation and the binary task ------------------------------------------------------------------

def resolve_representation(backbone: Backbone, block: str | None, timestep: int | None) -> tuple[str, int]:
    """The (block, timestep) used as the representation: given, the backbone's own (a ``representation``
    class attribute, e.g. the RC-DiT's ("encoder", 0)), or its only block; t = 0 without diffusion timesteps."""
    names = backbone.block_names()
    own = getattr(backbone, "representation", None) or ((names[0], 0) if len(names) == 1 else None)
    if block is None:
        if own is None:
            raise DiffprobeError(f"{backbone.path}: this {backbone.kind} backbone has several blocks {names}; "
                                 f"choose the representation with --block and --timestep (or --results with the "
                                 f"results.json of 'diffprobe probe' for its best pair)")
        block = own[0]
    if block not in names:
        raise DiffprobeError(f"{backbone.path}: unknown block {block!r}; this {backbone.kind} backbone has {names}")
    if timestep is None:
        if own is not None and own[0] == block:
            timestep = own[1]
        elif isinstance(backbone, (DDPMBackbone, RCDiTBackbone)):
            raise DiffprobeError(f"{backbone.path}: give --timestep for block {block!r}")
        else:  # backbones without diffusion timesteps use t = 0
            timestep = 0
    return block, int(timestep)


def binary_task(classes: list[str], pattern: str, z_tr: np.ndarray, y_tr: np.ndarray, z_te: np.ndarray,
                y_te: np.ndarray, proto_pred: np.ndarray, cfg: ZeroShotConfig, dc: dict | None) -> dict:
    """Positive classes (fnmatch ``pattern``) against the rest: two prototypes, grouped class prototypes, k-NN."""
    pos = positive_classes(classes, pattern)
    b_tr, b_te = pos[y_tr].astype(int), pos[y_te].astype(int)
    res = {"pattern": pattern, "positive_classes": [c for c, p in zip(classes, pos) if p],
           "n_test_positive": int(b_te.sum()), "n_test": len(b_te), "chance_accuracy": chance_accuracy(b_te),
           "two_prototypes": binary_metrics(b_te, prototype_predict(z_tr, b_tr, z_te, 2)),
           "class_prototypes": binary_metrics(b_te, pos[proto_pred].astype(int)),
           "knn": binary_metrics(b_te, knn_predict(z_tr, b_tr, z_te, 2, cfg.knn_k, cfg.knn_temperature)["weighted"])}
    if dc is not None:
        res["diffusion_classifier"] = {**binary_metrics(b_te[dc["subset"]], pos[dc["pred"]].astype(int)),
                                       "n_images": len(dc["subset"])}
    return res

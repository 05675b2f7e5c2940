"""Train the baselines of the controlled comparison from scratch: supervised, SimCLR, DINO, MAE.

All four run in the loop every backbone shares (``loop.train``: Hugging Face Accelerate, bf16
autocast where native, atomic checkpoints, exact ``--resume``, tqdm with loss and img/s). Each method is
a small ``nn.Module`` made of lightly's and timm's parts (losses, heads, transforms, models):

==============  ==========================================================================
supervised      timm ResNet + its classifier head, cross-entropy; flips / 90-degree turns
simclr          backbone + ``SimCLRProjectionHead``, ``NTXentLoss``; ``SimCLRTransform``
dino            student / momentum teacher (``update_momentum``, ``cosine_schedule``),
                ``DINOProjectionHead``, ``DINOLoss``; ``DINOTransform``; ResNet or ViT
mae             timm ViT in ``MaskedVisionTransformerTIMM`` + ``MaskedVisionTransformer-
                DecoderTIMM``, ``random_token_mask``, ``patchify``; ``MAETransform``
==============  ==========================================================================

Transforms: lightly's own view transforms, fed 1-channel uint8 tensors (they run on
torchvision v2), with the settings that make sense for greyscale plankton: no hue,
saturation, grey-scale or solarisation (lightly's solarisation is PIL-only), no blur (it would
erase the detail of 32 px crops), and all eight flips / quarter turns (plankton have no
canonical orientation). Views are normalised to [-1, 1] (mean 0.5, std 0.5), the range
``to_model_input`` gives at feature time.

The budget is the number of training images seen, ``budget_images``: ``ceil(budget /
batch_size)`` optimizer steps of ``batch_size`` images each, whatever number of views a method
makes of an image. Wall-clock time and parameter counts are written beside it in
``summary.json``. lightly's and torchvision's transforms draw from the global torch / numpy
generators, so each step runs them inside a generator state seeded by ``stable_seed(seed,
step)``: the run is a pure function of (seed, step), and ``--resume`` continues exactly.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from lightly.loss import DINOLoss, NTXentLoss
from lightly.models import utils as lightly_utils
from lightly.models.modules import (
    DINOProjectionHead,
    MaskedVisionTransformerDecoderTIMM,
    MaskedVisionTransformerTIMM,
    SimCLRProjectionHead,
)
from lightly.transforms import DINOTransform, MAETransform, SimCLRTransform
from lightly.utils.scheduler import cosine_schedule
from timm.scheduler import CosineLRScheduler

from ..backbones.baselines import ViTConfig, build_arch, save_baseline_dir  # noqa: F401 - ViTConfig re-exported
from ..config.pretrain import DEFAULT_ARCH, METHODS, BaselineConfig, default_arch  # noqa: F401 - re-exported
from ..data.dataset import ImageArray, to_model_input
from ..data.preprocess import Preprocess
from ..utils import DiffprobeError
from .ddpm import augment_batch
from .loop import TrainTask, square_images, train

TO_MODEL_RANGE = {"mean": [0.5], "std": [0.5]}  # [0, 1] -> [-1, 1], as to_model_input

# ---- methods: one nn.Module each; ``views`` draws a step's randomness on the CPU, ``forward`` is the loss ----

def _views(transform, x: torch.Tensor) -> list[torch.Tensor]:
    """A lightly (multi-)view transform on each uint8 image (B, S, S) -> one (B, 1, s, s) float tensor per view."""
    per_image = [transform(img.unsqueeze(0)) for img in x]
    return [torch.stack(v) for v in zip(*per_image)]


def _float_loss(x: torch.Tensor):
    """Losses in fp32 whatever autocast is around them: softmaxes over thousands of logits need it."""
    return torch.autocast(x.device.type, enabled=False)


class BaselineMethod(torch.nn.Module):
    uses_labels = False

    def views(self, x: torch.Tensor, y: torch.Tensor | None) -> dict:
        """uint8 images (B, S, S) and labels -> the step's inputs (CPU tensors; random draws here only)."""
        raise NotImplementedError

    def export(self) -> torch.nn.Module:
        """The model to freeze and probe."""
        raise NotImplementedError

    def before_step(self, step: int, total_steps: int) -> None:
        """Called before the forward pass (momentum updates)."""

    def after_backward(self, step: int) -> None:
        """Called between backward and the optimizer step (gradient surgery)."""


def zoom_batch(x: torch.Tensor, jitter: float, gen: torch.Generator, rotate: float = 0.0) -> torch.Tensor:
    """Each image (B, 1, S, S) zoomed about its centre by a factor drawn in [1 - jitter, 1 + jitter] and turned by an
    angle drawn in [-rotate, rotate] degrees; the border pixels (background) fill what the move uncovers. With the
    flips and quarter turns, ``rotate`` = 45 reaches every angle: plankton are seen in any orientation."""
    scale = 1 + jitter * (2 * torch.rand(len(x), generator=gen) - 1)
    # no draw without rotation: the runs trained before ``rotate`` existed keep their random stream
    angle = torch.deg2rad(rotate * (2 * torch.rand(len(x), generator=gen) - 1)) if rotate else torch.zeros(len(x))
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(len(x), 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Supervised(BaselineMethod):
    uses_labels = True

    def __init__(self, cfg: BaselineConfig, n_classes: int):
        super().__init__()
        self.model = build_arch(cfg.arch, num_classes=n_classes)
        self.label_smoothing, self.scale_jitter, self.rotate = cfg.label_smoothing, cfg.scale_jitter, cfg.rotate

    def views(self, x, y):
        x = augment_batch(to_model_input(x), torch.default_generator)
        if self.scale_jitter or self.rotate:
            x = zoom_batch(x, self.scale_jitter, torch.default_generator, self.rotate)
        return {"x": x, "y": y}

    def forward(self, batch):
        logits, y = self.model(batch["x"]), batch["y"]
        smoothing = 0.0 if y.is_floating_point() else self.label_smoothing  # soft targets carry their smoothing
        with _float_loss(logits):
            return F.cross_entropy(logits.float(), y, label_smoothing=smoothing)

    def export(self):
        return self.model


class SimCLR(BaselineMethod):
    def __init__(self, cfg: BaselineConfig, n_classes: int = 0):
        super().__init__()
        self.backbone = build_arch(cfg.arch, num_classes=0)
        dim = self.backbone.num_features
        self.head = SimCLRProjectionHead(dim, dim, cfg.projection_dim)
        self.criterion = NTXentLoss(temperature=cfg.temperature)
        self.transform = SimCLRTransform(
            input_size=cfg.image_size, min_scale=cfg.min_scale, cj_strength=0.5, cj_sat=0.0, cj_hue=0.0,
            random_gray_scale=0.0, gaussian_blur=0.0, hf_prob=0.5, vf_prob=0.5, rr_prob=0.5,
            normalize=TO_MODEL_RANGE)

    def views(self, x, y):
        return {"views": _views(self.transform, x)}

    def forward(self, batch):
        v0, v1 = batch["views"]
        z = self.head(self.backbone(torch.cat([v0, v1])))  # one pass: BatchNorm sees both views
        z0, z1 = z.float().chunk(2)
        with _float_loss(z):
            return self.criterion(z0, z1)

    def export(self):
        return self.backbone


class DINO(BaselineMethod):
    """Self-distillation with a momentum teacher; the teacher's backbone is the one probed (as in DINO)."""

    def __init__(self, cfg: BaselineConfig, n_classes: int = 0):
        super().__init__()
        self.student = build_arch(cfg.arch, num_classes=0)
        dim = self.student.num_features
        freeze = max(1, round(cfg.warmup_fraction * cfg.steps))  # last layer frozen during warm-up
        self.student_head = DINOProjectionHead(dim, 512, 64, cfg.dino_output_dim, batch_norm=True,
                                               freeze_last_layer=freeze)
        self.teacher = copy.deepcopy(self.student)
        self.teacher_head = DINOProjectionHead(dim, 512, 64, cfg.dino_output_dim, batch_norm=True)
        lightly_utils.deactivate_requires_grad(self.teacher)
        lightly_utils.deactivate_requires_grad(self.teacher_head)
        self.criterion = DINOLoss(output_dim=cfg.dino_output_dim)
        self.momentum_start = cfg.momentum_start
        s = cfg.image_size
        self.transform = DINOTransform(
            global_crop_size=s, local_crop_size=max(8, s // 2), n_local_views=cfg.dino_local_views,
            hf_prob=0.5, vf_prob=0.5, rr_prob=0.5, cj_strength=0.5, cj_sat=0.0, cj_hue=0.0, random_gray_scale=0.0,
            gaussian_blur=(0.0, 0.0, 0.0), solarization_prob=0.0, normalize=TO_MODEL_RANGE)

    def views(self, x, y):
        return {"views": _views(self.transform, x)}

    def forward(self, batch):
        views = batch["views"]
        n = len(views[0])
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher(torch.cat(views[:2]))).chunk(2)
        student = list(self.student_head(self.student(torch.cat(views[:2]))).chunk(2))
        if len(views) > 2:
            student += list(self.student_head(self.student(torch.cat(views[2:]))).split(n))
        with _float_loss(student[0]):
            return self.criterion([t.float() for t in teacher], [s.float() for s in student])

    def before_step(self, step, total_steps):
        m = cosine_schedule(step, max(1, total_steps), self.momentum_start, 1.0)
        lightly_utils.update_momentum(self.student, self.teacher, m=m)
        lightly_utils.update_momentum(self.student_head, self.teacher_head, m=m)

    def after_backward(self, step):
        self.student_head.cancel_last_layer_gradients(current_epoch=step)

    def export(self):
        return self.teacher


class MAE(BaselineMethod):
    def __init__(self, cfg: BaselineConfig, n_classes: int = 0):
        super().__init__()
        vit = build_arch(cfg.arch, num_classes=0)
        self.encoder = MaskedVisionTransformerTIMM(vit=vit)
        self.encoder.mask_token.requires_grad_(False)  # MAE drops masked tokens; the encoder's mask token is unused
        self.patch_size = cfg.arch.patch_size
        self.mask_ratio = cfg.mask_ratio
        self.decoder_embed = torch.nn.Linear(vit.embed_dim, cfg.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches, embed_dim=cfg.decoder_dim, depth=cfg.decoder_depth,
            num_heads=cfg.decoder_heads)
        self.decoder_pred = torch.nn.Linear(cfg.decoder_dim, self.patch_size**2)  # 1 channel
        self.transform = MAETransform(input_size=cfg.image_size, min_scale=0.2, normalize=TO_MODEL_RANGE)

    def views(self, x, y):
        (images,) = _views(self.transform, x)
        idx_keep, idx_mask = lightly_utils.random_token_mask(
            size=(len(images), self.encoder.sequence_length), mask_ratio=self.mask_ratio, device="cpu")
        return {"images": images, "idx_keep": idx_keep, "idx_mask": idx_mask}

    def forward(self, batch):
        images, idx_keep, idx_mask = batch["images"], batch["idx_keep"], batch["idx_mask"]
        encoded = self.decoder_embed(self.encoder.encode(images, idx_keep=idx_keep))
        tokens = lightly_utils.repeat_token(self.decoder.mask_token, (len(images), self.encoder.sequence_length))
        tokens = lightly_utils.set_at_index(tokens, idx_keep, encoded.type_as(tokens))
        pred = self.decoder_pred(lightly_utils.get_at_index(self.decoder(tokens), idx_mask))
        # Token index 0 is the class token; patch i is token i + 1.
        target = lightly_utils.get_at_index(lightly_utils.patchify(images, self.patch_size), idx_mask - 1)
        with _float_loss(pred):
            return F.mse_loss(pred.float(), target.float())

    def export(self):
        return self.encoder.vit


METHOD_CLASSES: dict[str, type[BaselineMethod]] = {"supervised": Supervised, "simclr": SimCLR, "dino": DINO,
                                                    "mae": MAE}


# ---- the task: what the baselines add to loop.train ------------------------------------------

@contextlib.contextmanager
def seeded_global_rng(seed: int):
    """Run a block with the global torch (CPU) and numpy generators seeded, then restore them."""
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def backbone_params(model: torch.nn.Module) -> int:
    """Parameters of a timm model without its classifier head."""
    head = model.get_classifier()
    return count_params(model) - (count_params(head) if isinstance(head, torch.nn.Module) else 0)


class BaselineTask(TrainTask):
    """A ``BaselineMethod`` in ``loop.train``: its views drawn under the step's seed, AdamW with timm's
    warm-up + cosine schedule, EMA weights exported when ``ema_decay`` is set (DINO's teacher is part of the
    method), one log row a step."""

    log_every = 1

    def __init__(self, data: np.ndarray, labels: torch.Tensor | None, n_classes: int, cfg: BaselineConfig):
        self.cfg, self.labels, self.n_classes = cfg, labels, n_classes
        self.x, self.n_images, self.steps = torch.from_numpy(data), len(data), cfg.steps
        self.desc, self.clip_grad = f"train {cfg.method}", cfg.clip_grad
        self.ema_decay = cfg.ema_decay
        # The schedule depends on the whole budget, so only checkpoint_every may change on resume.
        self.resume_keys = tuple(k for k in cfg.to_dict() if k not in ("checkpoint_every", "precision"))

    def build_model(self):
        return METHOD_CLASSES[self.cfg.method](self.cfg, self.n_classes)

    def lr_schedule(self, optimizer):
        cfg = self.cfg
        return CosineLRScheduler(optimizer, t_initial=cfg.steps, lr_min=cfg.lr * 1e-2,
                                 warmup_t=round(cfg.warmup_fraction * cfg.steps), warmup_lr_init=cfg.lr * 1e-2,
                                 t_in_epochs=False).step_update

    def batch(self, model, idx, gen):
        # lightly's and torchvision's transforms draw from the global generators: seed those for the step.
        with seeded_global_rng(gen.initial_seed()):
            return model.views(self.x[idx], self.labels[idx] if self.labels is not None else None)

    def loss(self, model, batch):
        return model(batch)

    def before_step(self, model, step):
        model.before_step(step, self.steps)

    def after_backward(self, model, step):
        model.after_backward(step)

    def export(self, model, out, device):
        cfg, exported = self.cfg, model.export()
        save_baseline_dir(out, exported, cfg.arch, method=cfg.method,
                          num_classes=self.n_classes if model.uses_labels else 0,
                          preprocess=Preprocess.for_training(cfg).to_dict())
        return {"method": cfg.method, "arch": cfg.arch.name, "steps": cfg.steps, "budget_images": cfg.budget_images,
                "params": backbone_params(exported),
                "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "n_classes": self.n_classes}


def train_baseline(images: ImageArray | np.ndarray, out_dir: str | Path, cfg: BaselineConfig, *,
                   labels: np.ndarray | None = None, n_classes: int | None = None, resume: bool = False,
                   progress: bool = True, accelerator: Accelerator | None = None,
                   teacher_probs: np.ndarray | None = None) -> Path:
    """Train one baseline on ``images`` (uint8 N x S x S; ``labels`` int (N,) only for supervised).

    ``teacher_probs`` (N, classes), supervised with ``cfg.distill`` > 0 only: a teacher's probabilities of each
    training image; the target of image i is ``(1 - distill)`` x its smoothed label + ``distill`` x
    ``teacher_probs[i]`` (knowledge distillation: an ensemble's knowledge in one network).

    Writes to ``out_dir``: ``config.json``, ``checkpoint/`` (latest, atomic), ``train_log.csv``
    (loss per step), the frozen backbone (``model.safetensors``, ``backbone.json``,
    ``preprocess.json``) and ``summary.json`` (images seen, wall-clock, img/s, parameters),
    written last. Returns ``out_dir``.
    """
    if isinstance(images, ImageArray):
        labels = images.labels if labels is None else labels
        n_classes = len(images.classes) if n_classes is None else n_classes
        images = images.images
    data = square_images(images, cfg.image_size, cfg.batch_size, f"{cfg.method} model")
    y_all = None
    if METHOD_CLASSES[cfg.method].uses_labels:
        if labels is None or len(labels) != len(data) or (np.asarray(labels) < 0).any():
            raise DiffprobeError("supervised training needs a label for every training image; give a labelled "
                                 "dataset (one sub-folder per class) or a manifest with labels")
        y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        n_classes = int(n_classes or int(y_all.max()) + 1)
        if cfg.distill:
            y_all = _distilled_targets(y_all, n_classes, cfg, teacher_probs)
    if teacher_probs is not None and not cfg.distill:
        raise DiffprobeError("teacher probabilities were given but distill is 0: set distill (the teacher's weight "
                             "in the targets, e.g. 0.5) or leave the teacher out")
    return train(BaselineTask(data, y_all, n_classes or 0, cfg), out_dir, resume=resume, progress=progress,
                 accelerator=accelerator)


def _distilled_targets(labels: torch.Tensor, n_classes: int, cfg: BaselineConfig,
                       teacher_probs: np.ndarray | None) -> torch.Tensor:
    """(N, classes) float targets: the smoothed labels and the teacher's probabilities, weighted by ``cfg.distill``."""
    if teacher_probs is None or np.shape(teacher_probs) != (len(labels), n_classes):
        raise DiffprobeError(f"distill = {cfg.distill} needs the teacher's probabilities of every training image, "
                             f"shape ({len(labels)}, {n_classes}); got "
                             f"{None if teacher_probs is None else np.shape(teacher_probs)}")
    smooth = F.one_hot(labels, n_classes).float() * (1 - cfg.label_smoothing) + cfg.label_smoothing / n_classes
    return (1 - cfg.distill) * smooth + cfg.distill * torch.as_tensor(teacher_probs, dtype=torch.float32)

"""Baseline backbones trained from scratch (supervised, SimCLR, DINO, MAE): a timm ResNet or ViT
sized for small 1-channel images, as frozen feature extractors with named stages.

They have no diffusion timestep, so every feature sits at timestep 0 of the (block, timestep)
grid, and ``extract_features`` + ``run_probe`` treat them exactly like the DDPM U-Net.

Stages (``block_names``), for a 32 px input:

=========  ===============================================  ==================
ResNet     ``layer1`` .. ``layer4`` (32, 16, 8, 4 px maps)   ``layer4`` + avg = the
                                                             penultimate feature
ConvNet    ``layer1`` .. ``layer5`` (32 .. 2 px maps)       ``layer5`` + avg
ViT        ``block0`` .. ``block{depth-1}`` (patch tokens    ``cls``: the final,
           as an (S/p x S/p) map, pooled like a CNN map)     layer-normed CLS token
=========  ===============================================  ==================

A backbone directory holds ``backbone.json`` (kind ``baseline``, the method, the architecture
config that rebuilds the model, and ``num_classes`` of a supervised head),
``preprocess.json`` and ``model.safetensors`` (the whole timm model, head included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import VisionTransformer

from ..config.backbones import (ArchConfig, ConvNetConfig, ResNetConfig, ViTConfig, arch_from_dict,  # noqa: F401
                                arch_to_dict)
from ..data.dataset import to_model_input
from ..utils import DiffprobeError, autocast, default_device, read_json, write_json
from .base import Backbone, pool, register, write_backbone_json

WEIGHTS = "model.safetensors"


class ConvNet(torch.nn.Module):
    """The plain CNN of ``ConvNetConfig`` with the parts of timm's model interface the baselines use
    (``num_features``, ``get_classifier``, ``forward_intermediates``); num_classes=0: ``model(x)`` is the pooled
    feature (B, widths[-1])."""

    def __init__(self, arch: ConvNetConfig, num_classes: int = 0):
        super().__init__()
        blocks, cin = [], 1
        for i, width in enumerate(arch.widths):
            layers = [] if i == 0 else [torch.nn.MaxPool2d(2)]
            for j in range(arch.convs):
                stride = arch.stem_stride if i == j == 0 else 1
                layers += [torch.nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False),
                           torch.nn.BatchNorm2d(width), torch.nn.ReLU(inplace=True)]
                cin = width
            blocks.append(torch.nn.Sequential(*layers))
        self.blocks = torch.nn.ModuleList(blocks)
        self.num_features = cin
        self.fc = torch.nn.Linear(cin, num_classes) if num_classes else torch.nn.Identity()

    def get_classifier(self) -> torch.nn.Module:
        return self.fc

    def forward_intermediates(self, x: torch.Tensor, indices: list[int], intermediates_only: bool = True):
        """The feature maps after blocks ``indices`` (1-based, as timm's ResNet stages)."""
        maps = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in indices:
                maps.append(x)
            if i >= max(indices):
                break
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


def build_arch(arch: ArchConfig, num_classes: int = 0) -> torch.nn.Module:
    """The (untrained) timm model of an architecture. num_classes=0: the head is the identity and ``model(x)``
    is the pooled feature: layer4's (B, widths[-1]) for a ResNet, the final CLS token (B, embed_dim) for a ViT."""
    if isinstance(arch, ResNetConfig):
        if len(arch.widths) != 4 or len(arch.depths) != 4:
            raise DiffprobeError(f"a ResNet needs 4 stage widths and depths, got {arch.widths} / {arch.depths}")
        model = ResNet(block=BasicBlock, layers=tuple(arch.depths), channels=tuple(arch.widths), in_chans=1,
                       num_classes=num_classes)
        # CIFAR-style stem: a 7x7/2 conv and a max-pool would leave 1x1 maps at 32 px.
        model.conv1 = torch.nn.Conv2d(1, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = torch.nn.Identity()
        return model
    if isinstance(arch, ConvNetConfig):
        return ConvNet(arch, num_classes)
    if arch.image_size % arch.patch_size:
        raise DiffprobeError(f"image size {arch.image_size} is not a multiple of the patch size {arch.patch_size}")
    return VisionTransformer(img_size=arch.image_size, patch_size=arch.patch_size, in_chans=1,
                             embed_dim=arch.embed_dim, depth=arch.depth, num_heads=arch.num_heads,
                             mlp_ratio=arch.mlp_ratio, num_classes=num_classes,
                             dynamic_img_size=arch.dynamic_img_size)


def save_baseline_dir(out: str | Path, model: torch.nn.Module, arch: ArchConfig, *, method: str, num_classes: int,
                      preprocess: dict) -> Path:
    """Write a backbone directory: model.safetensors, backbone.json, preprocess.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, out / WEIGHTS)
    write_backbone_json(out, "baseline", method=method, arch=arch_to_dict(arch), num_classes=num_classes)
    write_json(out / "preprocess.json", preprocess)
    return out


def load_baseline_model(path: str | Path) -> tuple[torch.nn.Module, ArchConfig, dict]:
    """(timm model with weights, its architecture, backbone.json) of a baseline directory."""
    path = Path(path)
    meta = read_json(path / "backbone.json")
    arch = arch_from_dict(meta["arch"])
    model = build_arch(arch, num_classes=int(meta.get("num_classes", 0)))
    if not (path / WEIGHTS).is_file():
        raise DiffprobeError(f"{path}: {WEIGHTS} missing; re-run 'diffprobe baseline' to write it")
    try:
        model.load_state_dict(load_file(path / WEIGHTS))
    except Exception as e:  # noqa: BLE001 - a damaged or mismatched file must say so, not show a traceback
        raise DiffprobeError(f"{path / WEIGHTS}: cannot load the weights ({type(e).__name__}: {e}); the file is "
                             f"damaged or from another architecture, re-run 'diffprobe baseline'") from None
    return model, arch, meta


@register("baseline")
class BaselineBackbone(Backbone):
    """A trained baseline (supervised / SimCLR / DINO / MAE) as a frozen feature extractor."""

    weights_file = WEIGHTS

    def __init__(self, path: Path, model: torch.nn.Module, arch: ArchConfig, meta: dict):
        super().__init__(path, model, arch.image_size)
        self.arch, self.meta = arch, meta

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> "BaselineBackbone":
        model, arch, meta = load_baseline_model(path)
        return cls(path, model.to(device or default_device()).eval(), arch, meta)

    def block_names(self) -> list[str]:
        return self.arch.block_names()

    @property
    def representation(self) -> tuple[str, int]:
        """The usual single representation (zero-shot's default): a ViT's CLS token, a CNN's last stage."""
        return ("cls" if isinstance(self.arch, ViTConfig) else self.arch.block_names()[-1], 0)

    @torch.no_grad()
    def classify(self, images: np.ndarray, *, batch_size: int = 256, precision: str = "auto") -> np.ndarray:
        """A supervised baseline's own head, end to end: uint8 (N, S, S) -> logits float32 (N, num_classes)."""
        if not int(self.meta.get("num_classes", 0)):
            raise DiffprobeError(f"{self.path}: this {self.meta.get('method')} backbone has no classifier head; "
                                 f"only a supervised baseline classifies end to end")
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            x = to_model_input(images[start:start + batch_size]).to(device)
            with autocast(device, precision):
                out.append(self.model(x).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, int(self.meta["num_classes"])), np.float32)

    @torch.no_grad()
    def features_batch(self, images: np.ndarray, spec) -> dict[tuple[str, int], np.ndarray]:
        """uint8 (B, S, S) -> {(block, 0): float32 (B, D)}; one forward pass gives every block.

        D per block: ResNet ``layer{i}``: widths[i-1] (x2 for avgmax, x4 for grid2);
        ViT ``block{i}``: embed_dim (same pooling factors), ``cls``: embed_dim.
        """
        if tuple(spec.timesteps) != (0,):
            raise DiffprobeError(f"{self.path}: a {self.meta.get('method', 'baseline')} backbone has no diffusion "
                                 f"timesteps; extract its features with --timesteps 0")
        blocks = list(spec.blocks) or self.block_names()
        unknown = sorted(set(blocks) - set(self.block_names()))
        if unknown:
            raise DiffprobeError(f"unknown blocks {unknown}; this backbone has {self.block_names()}")
        device = next(self.model.parameters()).device
        x = to_model_input(images).to(device)
        maps: dict[str, torch.Tensor] = {}
        with autocast(device, spec.precision):
            if isinstance(self.arch, (ResNetConfig, ConvNetConfig)):
                # timm's feature indices: 0 = stem, 1..4 = layer1..layer4 (a plain CNN's blocks: layer1..layerN).
                wanted = [int(b[len("layer"):]) for b in blocks]
                for i, fmap in zip(sorted(wanted), self.model.forward_intermediates(
                        x, indices=sorted(wanted), intermediates_only=True)):
                    maps[f"layer{i}"] = fmap
            else:
                wanted = sorted(int(b[len("block"):]) for b in blocks if b != "cls")
                final, inter = self.model.forward_intermediates(x, indices=wanted or [self.arch.depth - 1])
                for i, fmap in zip(wanted, inter):
                    maps[f"block{i}"] = fmap
        out = {}
        for b in blocks:
            if b == "cls":
                v = final[:, 0].float()
            else:
                v = pool(maps[b].float(), spec.pooling)
            out[(b, 0)] = v.cpu().numpy()
        return out

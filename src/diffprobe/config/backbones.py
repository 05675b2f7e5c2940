"""The architectures of the backbones (DDPM U-Net, RC-DiT, the baselines' ResNet, ViT and plain CNN): pydantic
dataclasses with their defaults and bounds. The models are built by the modules of ``diffprobe.backbones``
(``build_unet``, ``RCDiT``, ``build_arch``), which re-export these."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import DiffprobeError, NonEmptyTupleOf, Settings

# How a feature map (B, C, H, W) is pooled into a vector (``backbones.base.pool``); gridN keeps an N x N
# average grid: the spatial tokens an attentive probe reads (``probe.attentive``).
POOLINGS = ("avg", "max", "avgmax", "grid2", "grid4", "grid8")
# Where the RC-DiT's r comes from: the encoder's CLS token or the mean of its patch tokens.
POOLS = ("token", "avg")
Timestep = Annotated[int, Field(ge=0, lt=1000)]  # of the DDPM's 1000-step noise schedule
Widths = NonEmptyTupleOf[PositiveInt]  # channels of each stage


@dataclass(frozen=True)
class UNetConfig(Settings):
    """Architecture of the denoiser; defaults chosen by accuracy per CPU-hour on NDSB (see README).

    space_to_depth: 1, or f > 1 to fold f x f pixels into channels (``SpaceToDepthUNet2DModel``): the
    U-Net then runs on an (image_size / f) grid, at about the cost of an image that size.
    """

    image_size: PositiveInt = 32
    channels: Widths = (64, 128, 128)
    layers_per_block: PositiveInt = 1
    attention: bool = False  # self-attention in the lowest-resolution blocks
    space_to_depth: PositiveInt = 1

    def __post_init__(self):
        if self.image_size % self.space_to_depth:
            raise DiffprobeError(f"space_to_depth must divide the image size {self.image_size}, "
                                 f"got {self.space_to_depth}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        if self.space_to_depth == 1:  # as every model saved before the option existed: their files stay the same
            del d["space_to_depth"]
        return d


PREDICTIONS = ("epsilon", "v_prediction")  # RCDiTConfig.prediction's choices


@dataclass(frozen=True)
class RCDiTConfig(Settings):
    """Architecture of encoder and denoiser. Defaults, for 32 px on a CPU budget: a ViT-Tiny-wide encoder
    (192 wide, 6 deep, 4 px patches; 2.7M parameters) and a DiT as wide and deep on 4 px patches (4.2M).

    enc_pool: ``token`` (CLS token) or ``avg`` (mean of the patch tokens) gives r.
    r_tokens: r is also given to the DiT as this many tokens its attention reads beside the patches (0: r only
              modulates the blocks through adaLN, the paper's design).
    prediction: what the DiT outputs and is trained on, in diffusers' names: ``epsilon`` (the noise, the paper's)
                or ``v_prediction`` (v = sqrt(a) eps - sqrt(1 - a) x0). The epsilon loss weighs each timestep by
                its signal-to-noise ratio, so the large timesteps, where only r can give the image back, barely
                count; v's loss there is the error on the clean image itself.
    """

    image_size: PositiveInt = 32
    enc_patch: PositiveInt = 4
    enc_dim: PositiveInt = 192
    enc_depth: PositiveInt = 6
    enc_heads: PositiveInt = 3
    enc_pool: Literal[POOLS] = "token"
    dit_patch: PositiveInt = 4
    dit_dim: PositiveInt = 192
    dit_depth: PositiveInt = 6
    dit_heads: PositiveInt = 3
    mlp_ratio: PositiveFloat = 4.0
    r_tokens: NonNegativeInt = 0
    prediction: Literal[PREDICTIONS] = "epsilon"

    def __post_init__(self):
        for patch in ("enc_patch", "dit_patch"):
            if self.image_size % getattr(self, patch):
                raise DiffprobeError(f"{patch}={getattr(self, patch)} must divide the image size {self.image_size}")
        for dim, heads in (("enc_dim", "enc_heads"), ("dit_dim", "dit_heads")):
            if getattr(self, dim) % getattr(self, heads):
                raise DiffprobeError(f"{dim}={getattr(self, dim)} must be a multiple of {heads}={getattr(self, heads)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ResNetConfig(Settings):
    """A timm ResNet with BasicBlocks for small images: 3x3 stride-1 stem, no max-pool.

    widths: channels of layer1..layer4 (resnet18: 64, 128, 256, 512); the stem has timm's 64.
    depths: BasicBlocks per stage (resnet18: 2, 2, 2, 2).
    """

    image_size: PositiveInt = 32
    widths: Widths = (32, 64, 128, 256)
    depths: Widths = (2, 2, 2, 2)
    name: Literal["resnet"] = "resnet"

    def block_names(self) -> list[str]:
        return [f"layer{i}" for i in range(1, 5)]


@dataclass(frozen=True)
class ViTConfig(Settings):
    """A timm VisionTransformer for small 1-channel images (vit_tiny widths, patch 4 at 32 px).

    dynamic_img_size lets the same model take smaller crops (DINO's local views).
    """

    image_size: PositiveInt = 32
    patch_size: PositiveInt = 4
    embed_dim: PositiveInt = 192
    depth: PositiveInt = 6
    num_heads: PositiveInt = 3
    mlp_ratio: PositiveFloat = 4.0
    dynamic_img_size: bool = False
    name: Literal["vit"] = "vit"

    def block_names(self) -> list[str]:
        return [f"block{i}" for i in range(self.depth)] + ["cls"]


@dataclass(frozen=True)
class ConvNetConfig(Settings):
    """A plain CNN, the field's strong plankton baseline: ``len(widths)`` blocks of ``convs`` 3x3 convolutions with
    batch norm and ReLU, a 2x2 max-pool between blocks, global average pooling. About a third of the half-width
    ResNet-18's cost per image at 32 px.

    stem_stride: 2 halves the first block's resolution, so a 64 px image costs about what a 32 px one does.
    """

    image_size: PositiveInt = 32
    widths: Widths = (32, 64, 128, 256, 256)
    convs: PositiveInt = 2
    stem_stride: Annotated[int, Field(ge=1, le=2)] = 1
    name: Literal["convnet"] = "convnet"

    def __post_init__(self):
        if self.image_size // self.stem_stride // 2 ** (len(self.widths) - 1) < 1:
            raise DiffprobeError(f"a plain CNN of {len(self.widths)} blocks with stem stride {self.stem_stride} does "
                                 f"not fit {self.image_size} px images; use fewer widths or stem_stride 1")

    def block_names(self) -> list[str]:
        return [f"layer{i}" for i in range(1, len(self.widths) + 1)]


# Told apart by name, so that only that class checks an architecture (each refuses the others, naming itself).
ArchConfig = Annotated[ResNetConfig | ViTConfig | ConvNetConfig, Field(discriminator="name")]
ARCHS = {"resnet": ResNetConfig, "vit": ViTConfig, "convnet": ConvNetConfig}  # the baselines' architectures by name


def arch_to_dict(arch: ArchConfig) -> dict:
    d = asdict(arch)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def arch_from_dict(d: dict) -> ArchConfig:
    cls = ARCHS.get(d.get("name"))
    if cls is None:
        raise DiffprobeError(f"unknown baseline architecture {d.get('name')!r}; known: {', '.join(ARCHS)}")
    return cls(**d)

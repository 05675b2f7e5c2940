"""The architectures of the backbones (DDPM U-Net, RC-DiT, the baselines' ResNet, ViT and plain CNN): plain dataclasses
with their defaults and checks. The models are built by the modules of ``diffprobe.backbones``
(``build_unet``, ``RCDiT``, ``build_arch``), which re-export these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..base import DiffprobeError

# How a feature map (B, C, H, W) is pooled into a vector (``backbones.base.pool``); gridN keeps an N x N
# average grid: the spatial tokens an attentive probe reads (``probe.attentive``).
POOLINGS = ("avg", "max", "avgmax", "grid2", "grid4", "grid8")
# Where the RC-DiT's r comes from: the encoder's CLS token or the mean of its patch tokens.
POOLS = ("token", "avg")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the denoiser; defaults chosen by accuracy per CPU-hour on NDSB (see README).

    space_to_depth: 1, or f > 1 to fold f x f pixels into channels (``SpaceToDepthUNet2DModel``): the
    U-Net then runs on an (image_size / f) grid, at about the cost of an image that size.
    """

    image_size: int = 32
    channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    attention: bool = False  # self-attention in the lowest-resolution blocks
    space_to_depth: int = 1

    def __post_init__(self):
        f = self.space_to_depth
        if not isinstance(f, int) or f < 1 or self.image_size % f:
            raise DiffprobeError(f"space_to_depth must be a positive integer dividing the image size "
                                 f"{self.image_size}, got {f!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        if self.space_to_depth == 1:  # as every model saved before the option existed: their files stay the same
            del d["space_to_depth"]
        return d


PREDICTIONS = ("epsilon", "v_prediction")  # RCDiTConfig.prediction's choices


@dataclass(frozen=True)
class RCDiTConfig:
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

    image_size: int = 32
    enc_patch: int = 4
    enc_dim: int = 192
    enc_depth: int = 6
    enc_heads: int = 3
    enc_pool: str = "token"
    dit_patch: int = 4
    dit_dim: int = 192
    dit_depth: int = 6
    dit_heads: int = 3
    mlp_ratio: float = 4.0
    r_tokens: int = 0
    prediction: str = "epsilon"

    def __post_init__(self):
        if self.prediction not in PREDICTIONS:
            raise DiffprobeError(f"RC-DiT setting prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not isinstance(self.r_tokens, int) or isinstance(self.r_tokens, bool) or self.r_tokens < 0:
            raise DiffprobeError(f"RC-DiT setting r_tokens must be a whole number >= 0, got {self.r_tokens!r}")
        for name in ("image_size", "enc_patch", "enc_dim", "enc_depth", "enc_heads", "dit_patch", "dit_dim",
                     "dit_depth", "dit_heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DiffprobeError(f"RC-DiT setting {name} must be a positive integer, got {v!r}")
        for patch in ("enc_patch", "dit_patch"):
            if self.image_size % getattr(self, patch):
                raise DiffprobeError(f"{patch}={getattr(self, patch)} must divide the image size {self.image_size}")
        for dim, heads in (("enc_dim", "enc_heads"), ("dit_dim", "dit_heads")):
            if getattr(self, dim) % getattr(self, heads):
                raise DiffprobeError(f"{dim}={getattr(self, dim)} must be a multiple of {heads}={getattr(self, heads)}")
        if self.enc_pool not in POOLS:
            raise DiffprobeError(f"enc_pool must be one of {POOLS}, got {self.enc_pool!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RCDiTConfig":
        known = {f.name for f in fields(cls)}
        if set(d) - known:
            raise DiffprobeError(f"unknown RC-DiT settings {sorted(set(d) - known)}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class ResNetConfig:
    """A timm ResNet with BasicBlocks for small images: 3x3 stride-1 stem, no max-pool.

    widths: channels of layer1..layer4 (resnet18: 64, 128, 256, 512); the stem has timm's 64.
    depths: BasicBlocks per stage (resnet18: 2, 2, 2, 2).
    """

    image_size: int = 32
    widths: tuple[int, ...] = (32, 64, 128, 256)
    depths: tuple[int, ...] = (2, 2, 2, 2)
    name: str = "resnet"

    def block_names(self) -> list[str]:
        return [f"layer{i}" for i in range(1, 5)]


@dataclass(frozen=True)
class ViTConfig:
    """A timm VisionTransformer for small 1-channel images (vit_tiny widths, patch 4 at 32 px).

    dynamic_img_size lets the same model take smaller crops (DINO's local views).
    """

    image_size: int = 32
    patch_size: int = 4
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    dynamic_img_size: bool = False
    name: str = "vit"

    def block_names(self) -> list[str]:
        return [f"block{i}" for i in range(self.depth)] + ["cls"]


@dataclass(frozen=True)
class ConvNetConfig:
    """A plain CNN, the field's strong plankton baseline: ``len(widths)`` blocks of ``convs`` 3x3 convolutions with
    batch norm and ReLU, a 2x2 max-pool between blocks, global average pooling. About a third of the half-width
    ResNet-18's cost per image at 32 px.

    stem_stride: 2 halves the first block's resolution, so a 64 px image costs about what a 32 px one does.
    """

    image_size: int = 32
    widths: tuple[int, ...] = (32, 64, 128, 256, 256)
    convs: int = 2
    stem_stride: int = 1
    name: str = "convnet"

    def __post_init__(self):
        side = self.image_size // self.stem_stride // 2 ** (len(self.widths) - 1)
        if self.stem_stride not in (1, 2) or self.convs < 1 or side < 1:
            raise DiffprobeError(f"a plain CNN of {len(self.widths)} blocks with stem stride {self.stem_stride} does "
                                 f"not fit {self.image_size} px images; use fewer widths or stem_stride 1")

    def block_names(self) -> list[str]:
        return [f"layer{i}" for i in range(1, len(self.widths) + 1)]


ArchConfig = ResNetConfig | ViTConfig | ConvNetConfig
ARCHS = {"resnet": ResNetConfig, "vit": ViTConfig, "convnet": ConvNetConfig}  # the baselines' architectures by name


def arch_to_dict(arch: ArchConfig) -> dict:
    d = asdict(arch)
    for k, v in d.items():
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def arch_from_dict(d: dict) -> ArchConfig:
    d = dict(d)
    cls = ARCHS.get(d.get("name"))
    if cls is None:
        raise DiffprobeError(f"unknown baseline architecture {d.get('name')!r}; known: {', '.join(ARCHS)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

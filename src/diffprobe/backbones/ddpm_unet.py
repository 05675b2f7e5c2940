"""The DDPM U-Net backbone (diffusers ``UNet2DModel``), named taps on its blocks, and its features.

Features: for an image x0 and a timestep t, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, one
forward pass of the frozen U-Net, and every tapped block's activation map is pooled into a
vector. **One forward pass per (timestep, noise draw) yields all blocks.** The noise of an image
is drawn from a seed derived from its own pixels and the global seed, so an image gets the same
features whichever dataset, batch or order it comes in (training, evaluation, ``predict``).

Block names are stable and documented: ``down0 .. down{n-1}`` (encoder, highest resolution
first), ``mid``, ``up0 .. up{n-1}`` (decoder, lowest resolution first). A down block's
output is its last hidden state (before downsampling); an up block's is its output after
upsampling, i.e. at the resolution of the next block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.configuration_utils import register_to_config
from safetensors.torch import load_file

from ..config.backbones import UNetConfig
from ..data.dataset import to_model_input
from ..utils import DiffprobeError, autocast, default_device, read_json, stable_seed
from .base import Backbone, image_seeds, pool, register


class SpaceToDepthUNet2DModel(UNet2DModel):
    """A ``UNet2DModel`` on images ``space_to_depth`` times larger than its ``sample_size``: each
    f x f patch of pixels is folded into f^2 channels before the first convolution and unfolded after
    the last (pixel unshuffle / shuffle, the "simple diffusion" stem). A 64 px image then costs what a
    32 px one does, and the blocks' maps, hence the features, keep their 32 px grid.
    """

    @register_to_config
    def __init__(self, space_to_depth: int = 2, **kwargs):
        super().__init__(**kwargs)

    def forward(self, sample, timestep, class_labels=None, return_dict: bool = True):
        f = self.config.space_to_depth
        out = super().forward(F.pixel_unshuffle(sample, f), timestep, class_labels, return_dict=True)
        out.sample = F.pixel_shuffle(out.sample, f)
        return out if return_dict else (out.sample,)


def unet_image_size(unet: UNet2DModel) -> int:
    """The side of the images a U-Net denoises (its grid times the space-to-depth factor)."""
    return int(unet.config.sample_size) * int(unet.config.get("space_to_depth", 1))


def build_unet(cfg: UNetConfig) -> UNet2DModel:
    """The (untrained) U-Net of an architecture."""
    n = len(cfg.channels)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if cfg.attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    f = cfg.space_to_depth
    kw = dict(sample_size=cfg.image_size // f, in_channels=f * f, out_channels=f * f,
              block_out_channels=tuple(cfg.channels), layers_per_block=cfg.layers_per_block,
              down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=min(32, min(cfg.channels)))
    return SpaceToDepthUNet2DModel(space_to_depth=f, **kw) if f > 1 else UNet2DModel(**kw)


def make_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The standard DDPM forward process: 1000 steps, linear betas 1e-4 .. 0.02, epsilon prediction."""
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=1e-4, beta_end=0.02,
                         beta_schedule="linear", prediction_type="epsilon")


def block_names(unet: UNet2DModel) -> list[str]:
    n_down, n_up = len(unet.down_blocks), len(unet.up_blocks)
    return [f"down{i}" for i in range(n_down)] + ["mid"] + [f"up{i}" for i in range(n_up)]


def block_modules(unet: UNet2DModel) -> dict[str, torch.nn.Module]:
    mods = {f"down{i}": b for i, b in enumerate(unet.down_blocks)}
    mods["mid"] = unet.mid_block
    mods.update({f"up{i}": b for i, b in enumerate(unet.up_blocks)})
    return mods


class StopForward(Exception):
    """Raised by ``BlockTaps`` once the deepest block it reads has run: the rest of the U-Net is not needed."""


class BlockTaps:
    """Forward hooks that keep every named block's activation of the last forward pass.

    Used as a context manager: ``with BlockTaps(unet, blocks) as taps: taps.run(x, t); taps.outputs``.
    One forward pass fills every block's activation, and stops after the deepest of them (a probe on
    ``up1`` never needs ``up2`` and ``conv_out``: 29% of the default U-Net's FLOPs).
    """

    def __init__(self, unet: UNet2DModel, blocks: list[str] | None = None):
        mods = block_modules(unet)
        blocks = blocks or list(mods)
        unknown = [b for b in blocks if b not in mods]
        if unknown:
            raise DiffprobeError(f"unknown blocks {unknown}; this U-Net has {list(mods)}")
        self.unet = unet
        self.modules = {b: mods[b] for b in blocks}
        self.last = max(blocks, key=list(mods).index)  # forward order: down..., mid, up...
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []

    def run(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass, up to the deepest tapped block; returns the tapped activations."""
        try:
            self.unet(x, t)
        except StopForward:
            pass
        return self.outputs

    def _hook(self, name: str):
        def fn(_module, _inputs, output):
            # Down blocks return (hidden, residuals); the hidden state is the block's feature map.
            self.outputs[name] = output[0] if isinstance(output, tuple) else output
            if name == self.last:
                raise StopForward
        return fn

    def __enter__(self) -> "BlockTaps":
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False


@register("ddpm_unet")
class DDPMBackbone(Backbone):
    """A pretraining run folder (``unet/``, ``preprocess.json``) as a frozen feature extractor."""

    weights_file = "unet/diffusion_pytorch_model.safetensors"

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> "DDPMBackbone":
        unet = load_unet(path).to(device or default_device()).eval()
        return cls(path, unet, unet_image_size(unet))

    def block_names(self) -> list[str]:
        return block_names(self.model)

    def features_batch(self, images, spec):
        return unet_features(self.model, images, spec)


def load_unet(path: str | Path) -> UNet2DModel:
    """Load a diffusers-format U-Net (safetensors only), with a clear error when it is not one."""
    path = Path(path)
    if (path / "unet").is_dir():
        path = path / "unet"
    if not (path / "config.json").is_file() or not (path / "diffusion_pytorch_model.safetensors").is_file():
        raise DiffprobeError(f"{path}: not a diffusers U-Net directory (needs config.json and "
                             f"diffusion_pytorch_model.safetensors); pass the output of 'diffprobe pretrain'")
    try:
        config = read_json(path / "config.json")
        if "space_to_depth" in config:
            # diffusers' from_pretrained drops the keyword arguments a subclass passes on; build it from its
            # config and read the weights (safetensors) directly.
            kwargs = {k: v for k, v in config.items() if not k.startswith("_")}
            unet = SpaceToDepthUNet2DModel(**kwargs)
            unet.load_state_dict(load_file(path / "diffusion_pytorch_model.safetensors"))
            return unet
        return UNet2DModel.from_pretrained(path, use_safetensors=True)
    except Exception as e:  # noqa: BLE001 - a damaged checkpoint must say so, not show a deep traceback
        raise DiffprobeError(f"{path}: cannot load the U-Net ({type(e).__name__}: {e}); the checkpoint is "
                             f"damaged or from another version, re-run 'diffprobe pretrain'") from None


def draw_noise(images: np.ndarray, spec: FeatureSpec) -> torch.Tensor:
    """(B, T, K, 1, S, S) standard normal noise, one fixed draw per (image, timestep, noise index).

    Each draw is seeded by (image, t, k) alone, so the features at a timestep do not depend on which
    other timesteps a run asks for: a bundle reading one pair sees the noise the feature store saw.
    """
    s = images.shape[-1]
    return torch.stack([
        torch.stack([torch.stack([torch.randn((1, s, s), generator=torch.Generator().manual_seed(stable_seed(sd, t, k)))
                                  for k in range(spec.n_noise)]) for t in spec.timesteps])
        for sd in image_seeds(images, spec.seed)])


def resolve_blocks(unet, spec: FeatureSpec) -> list[str]:
    return list(spec.blocks) if spec.blocks else block_names(unet)


@torch.no_grad()
def unet_features(unet, images: np.ndarray, spec: FeatureSpec) -> dict[tuple[str, int], np.ndarray]:
    """Pooled features of a batch of uint8 images (B, S, S) at every (block, timestep) of ``spec``.

    Returns {(block, t): float32 array (B, D_block)}. Runs len(timesteps) * n_noise forward passes.
    """
    device = next(unet.parameters()).device
    blocks = resolve_blocks(unet, spec)
    alphas = make_scheduler().alphas_cumprod
    x0 = to_model_input(images).to(device)
    noise = draw_noise(images, spec).to(device)
    out: dict[tuple[str, int], torch.Tensor] = {}
    with BlockTaps(unet, blocks) as taps:
        for ti, t in enumerate(spec.timesteps):
            a = alphas[t].item()
            for k in range(spec.n_noise):
                xt = a**0.5 * x0 + (1 - a) ** 0.5 * noise[:, ti, k]
                tt = torch.full((len(x0),), t, device=device, dtype=torch.long)
                with autocast(device, spec.precision):
                    taps.run(xt, tt)
                for b in blocks:
                    v = pool(taps.outputs[b].float(), spec.pooling)
                    out[(b, t)] = v if k == 0 else out[(b, t)] + v
    return {key: (v / spec.n_noise).cpu().numpy() for key, v in out.items()}

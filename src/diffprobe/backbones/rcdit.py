"""The representation-conditioned diffusion transformer (RC-DiT) of the second paper, and its features.

A ViT encoder (timm ``VisionTransformer``, ``in_chans=1``) maps the *clean* image x0 to a
representation r. A DiT denoiser predicts the noise of x_t (or v, ``RCDiTConfig.prediction``) conditioned on r: the conditioning
vector c = timestep_embedding(t) + proj(r) modulates every block and the final layer by
adaptive layer norm with zero-initialised gates (adaLN-Zero, the way DiT takes a class label).
Trained together by the denoising loss alone, r must carry what the denoiser needs, so the
encoder becomes a self-supervised feature extractor.

The paper's DiT runs in the latent space of a pretrained VAE, which cannot be downloaded
here; this DiT works on patchified greyscale pixels at the project's image size.

Building blocks are diffusers' and timm's (``PatchEmbed`` with fixed 2-D sin-cos positions,
``Timesteps`` / ``TimestepEmbedding``, ``AdaLayerNormZero``, ``AdaLayerNormContinuous``, timm's
``Attention`` and ``Mlp``); only the gating glue of a block is written here.

Features (blocks in network order): ``encoder`` is r itself and does not depend on the
timestep (the same vector is stored at every t of a feature spec; use t = 0). ``dit0 ..
dit{n-1}`` are the mean-pooled tokens after each DiT block for x_t at each timestep of the
spec, with the noise drawn per image exactly as for the U-Net, conditioned on the image's own r.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from diffusers.models.embeddings import PatchEmbed, TimestepEmbedding, Timesteps
from diffusers.models.normalization import AdaLayerNormContinuous, AdaLayerNormZero
from safetensors.torch import load_file, save_file
from timm.layers import Attention, Mlp
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..config.backbones import POOLS, RCDiTConfig  # noqa: F401 - defined without torch, re-exported
from ..data.dataset import to_model_input
from ..utils import DiffprobeError, autocast, default_device, read_json
from .base import Backbone, pool, register, write_backbone_json
from .ddpm_unet import draw_noise, make_scheduler

WEIGHTS = "rcdit.safetensors"
ENCODER = "encoder"
class DiTBlock(nn.Module):
    """Pre-norm transformer block whose two norms are modulated by c and whose residuals are gated by c.

    tokens (B, N, D), c (B, D) -> (B, N, D). Gates start at zero, so the block starts as the identity.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim)  # shift/scale for attention, plus the gates and the MLP's shift/scale
        self.attn = Attention(dim, num_heads=heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=partial(nn.GELU, approximate="tanh"))
        nn.init.zeros_(self.norm1.linear.weight)
        nn.init.zeros_(self.norm1.linear.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(x, emb=c)
        x = x + gate_msa[:, None] * self.attn(h)
        h = self.norm2(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
        return x + gate_mlp[:, None] * self.mlp(h)


class RCDiTDenoiser(nn.Module):
    """DiT on pixel patches: eps_hat = f(x_t, t, r).

    x_t (B, 1, S, S), t (B,) int, r (B, R) -> eps_hat (B, 1, S, S); with ``return_hidden`` also the
    patch tokens after every block, a list of (B, (S/p)^2, D). With ``cfg.r_tokens`` = k > 0, r also enters as
    k tokens before the patches (attention reads them; they leave before the output layer).
    """

    def __init__(self, cfg: RCDiTConfig, rep_dim: int):
        super().__init__()
        d, p = cfg.dit_dim, cfg.dit_patch
        self.patch, self.grid = p, cfg.image_size // p
        self.patch_embed = PatchEmbed(height=cfg.image_size, width=cfg.image_size, patch_size=p, in_channels=1,
                                      embed_dim=d)
        # DiT's frequency embedding of t (256 channels, cos first), then an MLP to the model width.
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(256, d)
        self.rep_embed = Mlp(rep_dim, d, d, act_layer=nn.SiLU)
        self.n_rep_tokens = cfg.r_tokens
        self.rep_tokens = nn.Linear(rep_dim, cfg.r_tokens * d) if cfg.r_tokens else None
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.dit_heads, cfg.mlp_ratio) for _ in range(cfg.dit_depth))
        self.norm_out = AdaLayerNormContinuous(d, d, elementwise_affine=False, eps=1e-6)
        self.proj_out = nn.Linear(d, p * p)
        for m in (self.norm_out.linear, self.proj_out):  # adaLN-Zero: the model starts predicting eps_hat = 0
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def condition(self, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """c = timestep_embedding(t) + proj(r): (B,), (B, R) -> (B, D)."""
        return self.time_embed(self.time_proj(t).to(r.dtype)) + self.rep_embed(r)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, p*p) -> (B, 1, S, S)."""
        b, g, p = tokens.shape[0], self.grid, self.patch
        return tokens.reshape(b, g, g, p, p).permute(0, 1, 3, 2, 4).reshape(b, 1, g * p, g * p)

    def forward(self, xt: torch.Tensor, t: torch.Tensor, r: torch.Tensor, return_hidden: bool = False):
        c = self.condition(t, r)
        x = self.patch_embed(xt)
        k = self.n_rep_tokens
        if k:
            x = torch.cat([self.rep_tokens(r).view(len(r), k, -1).to(x.dtype), x], dim=1)
        hidden = []
        for block in self.blocks:
            x = block(x, c)
            hidden.append(x[:, k:])
        eps = self.unpatchify(self.proj_out(self.norm_out(x[:, k:], c)))
        return (eps, hidden) if return_hidden else eps


class RCDiT(nn.Module):
    """Encoder + denoiser, trained together: ``forward(x0, xt, t)`` -> the denoiser's output (B, 1, S, S), eps_hat
    or v_hat as ``config.prediction`` says; ``predict_eps`` gives eps_hat in both cases.

    ``drop`` (B,) bool replaces r by a learned null representation for those images (r-dropout,
    classifier-free style); the denoiser then learns an unconditional fallback too.
    """

    def __init__(self, cfg: RCDiTConfig):
        super().__init__()
        self.config = cfg
        # Not saved: the forward process is fixed (make_scheduler), and files written before v existed still load.
        self.register_buffer("alphas_cumprod", make_scheduler().alphas_cumprod.clone(), persistent=False)
        self.encoder = VisionTransformer(img_size=cfg.image_size, patch_size=cfg.enc_patch, in_chans=1,
                                         num_classes=0, global_pool=cfg.enc_pool, class_token=cfg.enc_pool == "token",
                                         embed_dim=cfg.enc_dim, depth=cfg.enc_depth, num_heads=cfg.enc_heads,
                                         mlp_ratio=cfg.mlp_ratio)
        self.null_rep = nn.Parameter(torch.zeros(cfg.enc_dim))
        self.denoiser = RCDiTDenoiser(cfg, rep_dim=cfg.enc_dim)

    def encode(self, x0: torch.Tensor) -> torch.Tensor:
        """Clean images (B, 1, S, S) in [-1, 1] -> r (B, enc_dim)."""
        return self.encoder(x0)

    def forward(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        r = self.encode(x0)
        if drop is not None:
            r = torch.where(drop[:, None], self.null_rep.to(r.dtype).expand_as(r), r)
        return self.denoiser(xt, t, r)

    def predict_eps(self, xt: torch.Tensor, t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """eps_hat (B, 1, S, S) for x_t (B, 1, S, S), t (B,), r (B, R), whatever the denoiser outputs."""
        out = self.denoiser(xt, t, r)
        if self.config.prediction == "epsilon":
            return out
        a = self.alphas_cumprod.to(xt.device)[t].view(-1, 1, 1, 1)
        return a.sqrt() * out.float() + (1 - a).sqrt() * xt.float()  # eps = sqrt(a) v + sqrt(1 - a) x_t


def block_names(cfg: RCDiTConfig) -> list[str]:
    return [ENCODER] + [f"dit{i}" for i in range(cfg.dit_depth)]


def save_rcdit(model: RCDiT, out: Path) -> None:
    """Weights (safetensors) and backbone.json: the run folder becomes an ``rcdit`` backbone dir."""
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, Path(out) / WEIGHTS)
    write_backbone_json(out, "rcdit", model=model.config.to_dict())


def load_rcdit(path: str | Path) -> RCDiT:
    path = Path(path)
    if not (path / WEIGHTS).is_file():
        raise DiffprobeError(f"{path}: {WEIGHTS} missing; pass a run folder written by 'diffprobe rcdit-pretrain'")
    cfg = RCDiTConfig(**read_json(path / "backbone.json").get("model", {}))
    model = RCDiT(cfg)
    try:
        model.load_state_dict(load_file(path / WEIGHTS))
    except Exception as e:  # noqa: BLE001 - a damaged or mismatched file must say so, not show a deep traceback
        raise DiffprobeError(f"{path / WEIGHTS}: cannot load the RC-DiT ({type(e).__name__}: {e}); the file is "
                             f"damaged or does not match backbone.json, re-run 'diffprobe rcdit-pretrain'") from None
    return model


@register("rcdit")
class RCDiTBackbone(Backbone):
    """An RC-DiT run folder as a frozen feature extractor; its single representation is r (``encoder``, t=0)."""

    weights_file = WEIGHTS
    representation = (ENCODER, 0)  # what zero-shot classification uses by default

    @classmethod
    def load(cls, path: Path, device: torch.device | None = None) -> "RCDiTBackbone":
        model = load_rcdit(path).to(device or default_device()).eval()
        return cls(path, model, model.config.image_size)

    def block_names(self) -> list[str]:
        return block_names(self.model.config)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, images: np.ndarray, precision: str = "auto") -> torch.Tensor:
        """uint8 (B, S, S) -> r float32 (B, enc_dim) on the model's device."""
        x0 = to_model_input(images).to(self.device)
        with autocast(self.device, precision):
            return self.model.encode(x0).float()

    @torch.no_grad()
    def denoise(self, xt: torch.Tensor, t: torch.Tensor, r: torch.Tensor, precision: str = "auto") -> torch.Tensor:
        """eps_hat float32 (B, 1, S, S) for x_t (B, 1, S, S), t (B,), r (B, enc_dim), all on the model's device."""
        with autocast(self.device, precision):
            return self.model.predict_eps(xt, t, r).float()

    @torch.no_grad()
    def features_batch(self, images: np.ndarray, spec) -> dict[tuple[str, int], np.ndarray]:
        names = self.block_names()
        blocks = list(spec.blocks) or names
        unknown = [b for b in blocks if b not in names]
        if unknown:
            raise DiffprobeError(f"unknown blocks {unknown}; this RC-DiT has {names}")
        r = self.encode(images, spec.precision)
        out: dict[tuple[str, int], np.ndarray] = {}
        if ENCODER in blocks:
            out.update({(ENCODER, t): r.cpu().numpy() for t in spec.timesteps})
        dit = [(b, int(b[3:])) for b in blocks if b != ENCODER]
        if not dit:
            return out
        device, g = self.device, self.model.denoiser.grid
        alphas = make_scheduler().alphas_cumprod
        x0 = to_model_input(images).to(device)
        noise = draw_noise(images, spec).to(device)
        sums: dict[tuple[str, int], torch.Tensor] = {}
        for ti, t in enumerate(spec.timesteps):
            a = alphas[t].item()
            tt = torch.full((len(x0),), t, device=device, dtype=torch.long)
            for k in range(spec.n_noise):
                xt = a**0.5 * x0 + (1 - a) ** 0.5 * noise[:, ti, k]
                with autocast(device, spec.precision):
                    _, hidden = self.model.denoiser(xt, tt, r, return_hidden=True)
                for b, i in dit:
                    fmap = hidden[i].float().transpose(1, 2).reshape(len(x0), -1, g, g)  # tokens as a map
                    v = pool(fmap, spec.pooling)
                    sums[(b, t)] = v if k == 0 else sums[(b, t)] + v
        out.update({key: (v / spec.n_noise).cpu().numpy() for key, v in sums.items()})
        return out

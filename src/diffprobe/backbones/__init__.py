"""Backbones: the DDPM U-Net (with block taps) and, in their issues, baselines and the RC-DiT.

Every kind registers itself in ``BACKBONES``; ``load_backbone(dir)`` opens any of them.
"""

from .base import BACKBONES, Backbone, load_backbone, register, write_backbone_json
from .ddpm_unet import BlockTaps, DDPMBackbone, UNetConfig, block_names, build_unet, load_unet, make_scheduler
from .rcdit import RCDiTBackbone, RCDiTConfig  # noqa: F401 - importing registers the "rcdit" kind
from .baselines import BaselineBackbone  # noqa: F401 - importing registers the "baseline" kind

__all__ = ["BACKBONES", "Backbone", "BlockTaps", "DDPMBackbone", "UNetConfig", "block_names", "build_unet",
           "load_backbone", "load_unet", "make_scheduler", "register", "write_backbone_json"]

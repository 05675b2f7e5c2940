"""Backbones: the DDPM U-Net (with block taps) and, in their issues, baselines and the RC-DiT."""

from .ddpm_unet import BlockTaps, UNetConfig, block_names, load_unet, make_scheduler

__all__ = ["BlockTaps", "UNetConfig", "block_names", "load_unet", "make_scheduler"]

"""Pretraining loops (Accelerate, bf16 autocast where native, EMA, atomic checkpoints, exact resume)."""

from .ddpm import PretrainConfig, pretrain, sample_grid

__all__ = ["PretrainConfig", "pretrain", "sample_grid"]

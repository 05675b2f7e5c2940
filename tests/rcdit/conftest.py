"""Shared fixtures: a tiny RC-DiT (ViT dim 32, depth 2; DiT dim 32, depth 2; 16 px) trained once per session."""

from __future__ import annotations

import pytest
import torch

from diffprobe.backbones.rcdit import RCDiTConfig
from diffprobe.pretrain.rcdit import RCDiTPretrainConfig, pretrain_rcdit

TINY = RCDiTConfig(image_size=16, enc_patch=4, enc_dim=32, enc_depth=2, enc_heads=2, dit_patch=4, dit_dim=32,
                   dit_depth=2, dit_heads=2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny models gain nothing from threads, and on a loaded machine thread hand-offs cost 100x the work.
    # Module scope: the setting ends with this folder's tests instead of leaking into the rest of the session.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _pretrain_cfg(steps: int = 60, model: RCDiTConfig = TINY, **kw) -> RCDiTPretrainConfig:
    return RCDiTPretrainConfig(model=model, steps=steps, batch_size=16, lr=1e-3, warmup_steps=5, checkpoint_every=20,
                               seed=0, **kw)


@pytest.fixture(scope="session")
def tiny_model_cfg() -> RCDiTConfig:
    return TINY


@pytest.fixture(scope="session")
def tiny_pretrain_cfg():
    """Factory: tiny_pretrain_cfg(steps=..., **overrides) -> RCDiTPretrainConfig."""
    return _pretrain_cfg


@pytest.fixture(scope="session")
def rcdit_run(synth_images, tmp_path_factory):
    """A tiny RC-DiT trained for 60 steps on the synthetic train part (16 px, 8 classes)."""
    out = tmp_path_factory.mktemp("rcdit") / "run"
    return pretrain_rcdit(synth_images.part("train")[0], out, _pretrain_cfg(), progress=False)


@pytest.fixture(scope="session")
def rcdit_backbone(rcdit_run):
    from diffprobe.backbones import load_backbone

    return load_backbone(rcdit_run, device=torch.device("cpu"))

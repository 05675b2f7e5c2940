"""The RC-DiT model and backbone: adaLN-Zero start, live conditioning, feature blocks and shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprobe.backbones.rcdit import RCDiT, block_names
from diffprobe.features import FeatureSpec, extract_features
from diffprobe.utils import DiffprobeError

def _inputs(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g), torch.randint(0, 1000, (n,), generator=g)


def test_adaln_zero_starts_at_zero_and_perturbed_conditioning_is_live(tiny_model_cfg):
    torch.manual_seed(0)
    model = RCDiT(tiny_model_cfg).eval()
    xt, t = _inputs()
    r1, r2 = torch.randn(4, tiny_model_cfg.enc_dim), torch.randn(4, tiny_model_cfg.enc_dim)
    with torch.no_grad():
        assert model.denoiser(xt, t, r1).abs().max() == 0  # zero-initialised modulation and output layer
        for p in model.denoiser.parameters():  # perturb everything, the zero-initialised gates included
            p.add_(0.05 * torch.randn_like(p))
        e1, e2 = model.denoiser(xt, t, r1), model.denoiser(xt, t, r2)
    assert e1.shape == (4, 1, 16, 16)
    assert (e1 - e2).abs().mean() > 1e-3 * e1.abs().mean() + 1e-6


def test_trained_denoiser_uses_r(rcdit_run, synth_images):
    """After training, the denoiser predicts the noise better with the encoder's r than with the null r (in
    fp32, so no rounding decides). Whether r is specific to each image (own r better than another image's,
    the ``gap``) is what ``conditioning_gap`` measures on real runs; 60 steps of a tiny model do not get there."""
    from diffprobe.backbones.rcdit import load_rcdit
    from diffprobe.pretrain.rcdit import conditioning_gap

    gap = conditioning_gap(load_rcdit(rcdit_run), synth_images.images[:64], per_bucket=32)
    assert gap["all"]["null"] > 1.1 * gap["all"]["own"]


def test_encoder_is_trained_by_the_denoising_loss(rcdit_run, tiny_model_cfg):
    from diffprobe.backbones.rcdit import load_rcdit

    torch.manual_seed(0)  # the trainer seeds the same way before building the model
    init = RCDiT(tiny_model_cfg)
    trained = load_rcdit(rcdit_run)
    moved = [(a - b).abs().max().item() for a, b in zip(init.encoder.parameters(), trained.encoder.parameters())]
    assert max(moved) > 1e-4


def test_feature_blocks_and_shapes(rcdit_backbone, synth_images, tiny_model_cfg):
    imgs = synth_images.images[:5]
    assert rcdit_backbone.block_names() == ["encoder", "dit0", "dit1"] == block_names(tiny_model_cfg)
    f = rcdit_backbone.features_batch(imgs, FeatureSpec(timesteps=(0, 10, 200)))
    assert set(f) == {(b, t) for b in ("encoder", "dit0", "dit1") for t in (0, 10, 200)}
    assert all(v.shape == (5, 32) and v.dtype == np.float32 for v in f.values())
    # r does not depend on the timestep; the DiT blocks do.
    assert np.array_equal(f[("encoder", 0)], f[("encoder", 200)])
    only_r = rcdit_backbone.features_batch(imgs, FeatureSpec(timesteps=(0,), blocks=("encoder",)))
    assert set(only_r) == {("encoder", 0)} and np.array_equal(only_r[("encoder", 0)], f[("encoder", 0)])
    assert not np.allclose(f[("dit1", 10)], f[("dit1", 200)])
    g = rcdit_backbone.features_batch(imgs, FeatureSpec(timesteps=(10,), blocks=("dit0",), pooling="grid2"))
    assert g[("dit0", 10)].shape == (5, 4 * 32)
    with pytest.raises(DiffprobeError, match="unknown blocks"):
        rcdit_backbone.features_batch(imgs, FeatureSpec(timesteps=(10,), blocks=("mid",)))


def test_dit_features_per_image_whatever_the_batch(rcdit_backbone, synth_images):
    spec = FeatureSpec(timesteps=(50,), blocks=("dit1",), precision="fp32")
    alone = rcdit_backbone.features_batch(synth_images.images[3:4], spec)[("dit1", 50)]
    batch = rcdit_backbone.features_batch(synth_images.images[:6], spec)[("dit1", 50)]
    np.testing.assert_allclose(alone[0], batch[3], rtol=1e-4, atol=1e-5)


def test_feature_store_and_grid(rcdit_run, synth_images, tmp_path):
    store = extract_features(rcdit_run, synth_images, FeatureSpec(timesteps=(0, 25)), tmp_path, progress=False)
    assert store.meta["backbone"] == "rcdit"
    assert store.pairs == [(b, t) for b in ("encoder", "dit0", "dit1") for t in (0, 25)]
    assert store.get("encoder", 25).shape == (len(synth_images), 32)


def test_r_tokens_are_read_by_attention_and_leave_before_the_output(tiny_model_cfg):
    from dataclasses import replace

    torch.manual_seed(0)
    model = RCDiT(replace(tiny_model_cfg, r_tokens=2)).eval()
    xt, t = _inputs()
    r1, r2 = torch.randn(4, tiny_model_cfg.enc_dim), torch.randn(4, tiny_model_cfg.enc_dim)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
        eps, hidden = model.denoiser(xt, t, r1, return_hidden=True)
        # Through the tokens alone (the adaLN path held fixed by the same c): r still changes the output.
        c = model.denoiser.condition(t, r1)
        model.denoiser.condition = lambda t_, r_: c
        assert (model.denoiser(xt, t, r2) - eps).abs().mean() > 1e-4
    grid = (16 // tiny_model_cfg.dit_patch) ** 2
    assert eps.shape == (4, 1, 16, 16) and all(h.shape == (4, grid, tiny_model_cfg.dit_dim) for h in hidden)
    with pytest.raises(DiffprobeError, match="r_tokens"):
        replace(tiny_model_cfg, r_tokens=-1)

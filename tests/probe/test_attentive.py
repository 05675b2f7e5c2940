"""The attentive probe reads where things are in a map, which global average pooling cannot."""

import numpy as np
import pytest
import torch

from diffprobe.backbones.base import pool
from diffprobe.probe.attentive import AttentiveProbe, grid_tokens
from diffprobe.utils import DiffprobeError


def test_grid_tokens_matches_pool_layout():
    fmap = torch.randn(3, 5, 16, 16)
    x = pool(fmap, "grid4").numpy()
    tokens = grid_tokens(x, 4)
    assert tokens.shape == (3, 16, 5)
    # token 0 is the top-left cell, its channels are the average of the top-left 4 x 4 block
    np.testing.assert_allclose(tokens[:, 0], fmap[:, :, :4, :4].mean((2, 3)).numpy(), atol=1e-5)
    np.testing.assert_allclose(tokens.mean(1), pool(fmap, "avg").numpy(), atol=1e-5)
    with pytest.raises(DiffprobeError, match="grid4"):
        grid_tokens(np.zeros((2, 15)), 4)


def positional_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same bright token in every image, at the top-left (class 0) or bottom-right (class 1) cell: the
    token average is identical for both classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 16, 8)).astype(np.float32)
    x[np.arange(n), np.where(y == 0, 0, 15), 0] += 3.0
    return x, y


def test_attentive_probe_reads_position_that_averaging_loses():
    xtr, ytr = positional_classes(400, 0)
    xva, yva = positional_classes(200, 1)
    head = AttentiveProbe(epochs=30, n_heads=2, batch_size=32, lr=1e-2, dropout=0.0, precision="fp32", seed=0).fit(xtr, ytr, xva, yva)
    assert head.logits(xva).shape == (200, 2)
    assert (head.logits(xva).argmax(1) == yva).mean() > 0.9
    # the same data seen through the token average is a coin toss for any classifier
    mean_gap = abs(xva[yva == 0].mean((0, 1)) - xva[yva == 1].mean((0, 1))).max()
    assert mean_gap < 0.1
    assert head.config["epoch"] >= 1 and head.config["n_tokens"] == 16


def test_attentive_probe_is_seeded_and_checks_shapes():
    xtr, ytr = positional_classes(100, 0)
    xva, yva = positional_classes(50, 1)
    a = AttentiveProbe(epochs=2, n_heads=2, precision="fp32", seed=3).fit(xtr, ytr, xva, yva).logits(xva)
    b = AttentiveProbe(epochs=2, n_heads=2, precision="fp32", seed=3).fit(xtr, ytr, xva, yva).logits(xva)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(DiffprobeError, match="tokens"):
        AttentiveProbe(epochs=1).fit(xtr.reshape(100, -1), ytr, xva, yva)
    with pytest.raises(DiffprobeError, match="divide"):
        AttentiveProbe(epochs=1, n_heads=3).fit(xtr, ytr, xva, yva)


def test_attentive_probe_reads_groups_and_extra_values():
    """Tokens of two pairs as two groups, plus an extra per-image value that alone decides the class."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 1, (300, 8, 4)).astype(np.float32)
    extra = (np.eye(3)[y] * 3 + rng.normal(0, 0.5, (300, 3))).astype(np.float32)
    head = AttentiveProbe(epochs=10, n_heads=2, batch_size=32, lr=1e-2, precision="fp32").fit(
        x[:200], y[:200], x[200:], y[200:], groups=2, extra_train=extra[:200], extra_val=extra[200:])
    assert head.config["groups"] == 2 and head.config["n_extra"] == 3
    assert (head.logits(x[200:], extra[200:]).argmax(1) == y[200:]).mean() > 0.9
    with pytest.raises(DiffprobeError, match="extra"):
        head.logits(x[200:])
    with pytest.raises(DiffprobeError, match="equal groups"):
        AttentiveProbe(epochs=1, n_heads=2).fit(x[:200], y[:200], x[200:], y[200:], groups=3)


def test_attentive_probe_with_a_hidden_layer_round_trips():
    xtr, ytr = positional_classes(64, 0)
    xva, yva = positional_classes(32, 1)
    probe = AttentiveProbe(epochs=2, n_heads=2, hidden=8, precision="fp32")
    head = probe.fit(xtr, ytr, xva, yva)
    assert head.config["hidden"] == 8 and len(probe.history_) == 2
    best = min(probe.history_, key=lambda h: h["val_log_loss"])
    logits = head.logits(xva)
    assert logits.shape == (32, 2)
    # the stored weights are the best epoch's: the head reproduces its validation loss
    loss = -np.mean(logits[np.arange(32), yva] - np.log(np.exp(logits).sum(1)))
    assert abs(loss - best["val_log_loss"]) < 1e-4
    with pytest.raises(DiffprobeError, match="hidden"):
        AttentiveProbe(hidden=-1)

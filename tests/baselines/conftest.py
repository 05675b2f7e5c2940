"""Fixtures for the baselines and the controlled comparison: tiny architectures, tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

IMAGE_SIZE = 16


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models on a shared 2-core machine: one thread avoids OpenMP spin-waits that make them 10x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def arrays():
    """Synthetic plankton at 16 px: a train set (16 per class) and a held-out set (8 per class, other seed)."""
    from diffprobe.data.preprocess import Preprocess
    from diffprobe.data.synthetic import generate_arrays

    pre = Preprocess(size=IMAGE_SIZE)

    def make(n, seed):
        ims, labels, names = generate_arrays(n_per_class=n, size=32, seed=seed)
        return np.stack([pre(im.astype(np.float32) / 255.0) for im in ims]), np.asarray(labels), names

    x, y, names = make(16, 0)
    x_test, y_test, _ = make(8, 1)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "classes": names}


@pytest.fixture(scope="session")
def tiny_resnet():
    from diffprobe.backbones.baselines import ResNetConfig

    return ResNetConfig(image_size=IMAGE_SIZE, widths=(8, 16, 16, 32), depths=(1, 1, 1, 1))


@pytest.fixture(scope="session")
def tiny_vit():
    from diffprobe.backbones.baselines import ViTConfig

    return ViTConfig(image_size=IMAGE_SIZE, patch_size=4, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="session")
def tiny_config(tiny_resnet, tiny_vit):
    """tiny_config(method, steps, arch=None, **overrides) -> a BaselineConfig of a few k parameters, batch 32."""
    from diffprobe.pretrain.baselines import BaselineConfig

    def make(method, steps, arch=None, **kw):
        arch = arch or (tiny_vit if method == "mae" else tiny_resnet)
        base = dict(method=method, arch=arch, budget_images=32 * steps, batch_size=32, lr=3e-3,
                    warmup_fraction=0.0, checkpoint_every=0, decoder_dim=32, decoder_depth=1, decoder_heads=2,
                    dino_output_dim=256)
        return BaselineConfig(**{**base, **kw})

    return make


@pytest.fixture(scope="session")
def long_tail_dir(tmp_path_factory):
    """A long-tailed synthetic folder: 8 classes from 100 down to 12 images (5 have the 30 of the balanced setting)."""
    from diffprobe.workflows.datasets import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("longtail") / "images", n_per_class=100, size=32, long_tail=True,
                           imbalance=8.0, seed=0)

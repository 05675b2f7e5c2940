import csv

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from safetensors.torch import load_file

from diffprobe.pretrain import PretrainConfig, pretrain
from diffprobe.pretrain.ddpm import augment_batch
from diffprobe.pretrain.loop import batch_for_step
from diffprobe.utils import DiffprobeError, read_json


def _losses(run):
    with open(run / "train_log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_run_is_a_diffusers_model_with_preprocessing_beside_it(tiny_run, tiny_cfg):
    unet = UNet2DModel.from_pretrained(tiny_run / "unet", use_safetensors=True)
    assert unet.config.sample_size == 16 and tuple(unet.config.block_out_channels) == (16, 32)
    assert read_json(tiny_run / "preprocess.json") == {"size": 16, "invert": True, "flatfield": True}
    assert read_json(tiny_run / "backbone.json")["kind"] == "ddpm_unet"
    assert read_json(tiny_run / "summary.json")["step"] == tiny_cfg.steps
    assert (tiny_run / "scheduler" / "scheduler_config.json").is_file()


def test_training_lowers_the_loss(tiny_run):
    losses = _losses(tiny_run)
    assert losses[-1] < 0.7 * losses[0]


def test_resume_continues_exactly(synth_images, tiny_cfg, tmp_path):
    train = synth_images.part("train")[0]
    cfg = PretrainConfig(**{**tiny_cfg.to_dict(), "steps": 24, "checkpoint_every": 8})
    full = pretrain(train, tmp_path / "full", cfg, progress=False, sample=False)
    # "Interrupted" after 8 steps (its last complete checkpoint), then resumed to 24.
    half = PretrainConfig(**{**cfg.to_dict(), "steps": 8})
    pretrain(train, tmp_path / "cut", half, progress=False, sample=False)
    pretrain(train, tmp_path / "cut", cfg, resume=True, progress=False, sample=False)
    a = load_file(full / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "checkpoint" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ema_a = load_file(full / "unet" / "diffusion_pytorch_model.safetensors")
    ema_b = load_file(tmp_path / "cut" / "unet" / "diffusion_pytorch_model.safetensors")
    for k in ema_a:
        torch.testing.assert_close(ema_a[k], ema_b[k], rtol=0, atol=0)
    assert _losses(full)[-1] == _losses(tmp_path / "cut")[-1]


def test_existing_run_needs_resume_and_same_architecture(tiny_run, synth_images, tiny_cfg):
    train = synth_images.part("train")[0]
    with pytest.raises(DiffprobeError, match="--resume"):
        pretrain(train, tiny_run, tiny_cfg, progress=False)
    other = PretrainConfig(**{**tiny_cfg.to_dict(), "unet": {**tiny_cfg.unet.to_dict(), "channels": [8, 16]}})
    with pytest.raises(DiffprobeError, match="different architecture"):
        pretrain(train, tiny_run, other, resume=True, progress=False)


def test_nan_loss_stops_with_a_clear_error(synth_images, tiny_cfg, tmp_path):
    cfg = PretrainConfig(**{**tiny_cfg.to_dict(), "lr": 1e30, "steps": 30, "warmup_steps": 1})
    with pytest.raises(DiffprobeError, match=r"loss became (nan|inf).*Lower --lr"):
        pretrain(synth_images.part("train")[0], tmp_path / "nan", cfg, progress=False, sample=False)


def test_wrong_image_size_and_bad_config_types_are_refused(synth_images, tiny_cfg, tmp_path):
    with pytest.raises(DiffprobeError, match="expects 16 px"):
        pretrain(np.zeros((40, 24, 24), np.uint8), tmp_path / "x", tiny_cfg, progress=False)
    with pytest.raises(DiffprobeError, match="PretrainConfig.batch_size: Input should be a valid integer, got '64'"):
        PretrainConfig(**{**tiny_cfg.to_dict(), "batch_size": "64"})
    with pytest.raises(DiffprobeError, match="unknown pretrain settings"):
        PretrainConfig.from_dict({**tiny_cfg.to_dict(), "learning_rate": 1})


def test_batches_and_augmentations_are_functions_of_the_step():
    a = batch_for_step(5, 100, 16, seed=0)
    assert torch.equal(a, batch_for_step(5, 100, 16, seed=0)) and len(a) == 16
    epoch = torch.cat([batch_for_step(s, 100, 16, seed=0) for s in range(6)])
    assert len(set(epoch.tolist())) == 96  # no repeats within an epoch
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    y1 = augment_batch(x, torch.Generator().manual_seed(1))
    y2 = augment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)
    # Flips and rotations only permute pixels.
    assert torch.equal(y1.flatten(1).sort(1).values, x.flatten(1).sort(1).values)


def test_space_to_depth_unet_denoises_larger_images_on_the_same_grid(synth_images, tmp_path):
    from diffprobe.backbones import UNetConfig, load_backbone
    from diffprobe.features import FeatureSpec

    cfg = PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32), space_to_depth=2), steps=6, batch_size=8,
                         lr=1e-3, warmup_steps=2, checkpoint_every=6, seed=0)
    run = pretrain(synth_images.part("train")[0], tmp_path / "s2d", cfg, progress=False, sample=True)
    backbone = load_backbone(run)
    unet = backbone.model
    assert backbone.image_size == 16 and unet.config.sample_size == 8 and unet.config.in_channels == 4
    x = torch.randn(3, 1, 16, 16)
    assert unet(x, torch.tensor([1, 2, 3])).sample.shape == x.shape
    # the blocks see the 8 x 8 grid: the first down block's map is 8 x 8
    feats = backbone.features_batch(synth_images.images[:3], FeatureSpec(timesteps=(1,), blocks=("down0",),
                                                                         pooling="grid2", precision="fp32"))
    assert feats[("down0", 1)].shape == (3, 16 * 4)
    assert read_json(run / "unet" / "config.json")["space_to_depth"] == 2
    assert "space_to_depth" not in UNetConfig().to_dict()  # plain U-Nets keep their files as before
    with pytest.raises(DiffprobeError, match="space_to_depth"):
        UNetConfig(image_size=30, space_to_depth=4)

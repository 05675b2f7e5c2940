"""Fine-tuning the pretrained U-Net with labels (the ablation's extra row): it learns, resumes, reloads."""

import numpy as np
import pytest

from diffprobe.pretrain.finetune import FinetuneConfig, finetune, finetuned_logits, load_finetuned
from diffprobe.utils import DiffprobeError, read_json


@pytest.fixture(scope="module")
def finetuned(tiny_run, synth_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune") / "run"
    train = synth_images.splits == "train"
    cfg = FinetuneConfig(model_dir=str(tiny_run), blocks=("down1", "mid"), hidden=64, dropout=0.1, batch_size=16,
                         lr=2e-3, warmup_steps=5, steps=60, checkpoint_every=30)
    finetune(cfg, synth_images.images[train], synth_images.meta[train], synth_images.labels[train],
             len(synth_images.classes), out, progress=False)
    return out, cfg


def test_finetuning_learns_the_classes_and_reloads_from_safetensors(finetuned, synth_images):
    out, _ = finetuned
    summary = read_json(out / "summary.json")
    assert summary["step"] == 60 and summary["last_loss"] < summary["first_loss"]
    model = load_finetuned(out)
    test = synth_images.splits == "test"
    logits = finetuned_logits(model, synth_images.images[test], synth_images.meta[test], views=2)
    assert logits.shape == (test.sum(), len(synth_images.classes))
    accuracy = (logits.argmax(1) == synth_images.labels[test]).mean()
    assert accuracy > 2 / len(synth_images.classes)  # well above chance
    again = finetuned_logits(load_finetuned(out), synth_images.images[test], synth_images.meta[test], views=2)
    np.testing.assert_allclose(again, logits, rtol=1e-5, atol=1e-5)  # the same seeded noise: the same logits


def test_finetuning_refuses_missing_labels_and_an_unfinished_run(tiny_run, synth_images, tmp_path):
    cfg = FinetuneConfig(model_dir=str(tiny_run), blocks=("mid",), steps=2, batch_size=4)
    with pytest.raises(DiffprobeError, match="one label"):
        finetune(cfg, synth_images.images[:8], synth_images.meta[:8], -np.ones(8, int), 3, tmp_path / "r")
    with pytest.raises(DiffprobeError, match="has not finished"):
        load_finetuned(tmp_path / "nothing")
    with pytest.raises(DiffprobeError, match="steps"):
        FinetuneConfig(model_dir="x", steps=0)

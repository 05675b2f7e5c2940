"""Zero-shot classification: prototypes, k-NN, the diffusion classifier with pruning, binary detection, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffprobe.backbones.base import Backbone
from diffprobe.backbones.ddpm_unet import make_scheduler
from diffprobe.cli import main
from diffprobe.data.dataset import ImageArray
from diffprobe.data.preprocess import Preprocess
from diffprobe.config.evaluate import DiffusionClassifierConfig, ZeroShotConfig
from diffprobe.evaluate.zeroshot import (diagnostic_t_range, diffusion_classify, knn_predict, positive_classes,
                                         prototype_predict, sample_references)
from diffprobe.utils import DiffprobeError, read_json, write_json
from diffprobe.workflows.zeroshot import zeroshot


def _easy_images(n_per_class=30, size=16, seed=0) -> ImageArray:
    """Three deliberately easy classes: a small dot, a large disc, a horizontal bar (jittered, noisy)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            cy, cx = rng.uniform(5, size - 5, 2)
            if label == 0:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 < 2.0
            elif label == 1:
                m = (yy - cy) ** 2 + (xx - cx) ** 2 < 16.0
            else:
                m = (np.abs(yy - cy) < 1.5) & (np.abs(xx - cx) < 6.5)
            im = 200 * m + rng.normal(0, 8, (size, size))
            images.append(np.clip(im, 0, 255).astype(np.uint8))
            labels.append(label)
    splits = np.array((["train"] * 20 + ["test"] * 10) * 3)
    return ImageArray(np.stack(images), np.array(labels), ["dot", "disc", "bar"], splits,
                      [f"{i}.png" for i in range(len(images))], Preprocess(size))


def test_prototypes_and_knn_beat_chance_on_an_easy_task(rcdit_backbone, tmp_path):
    arr = _easy_images()
    r = zeroshot(rcdit_backbone, arr, tmp_path, ZeroShotConfig(diffusion=None), progress=False)
    assert r["representation"] == {"block": "encoder", "timestep": 0}
    assert r["chance_accuracy"] == pytest.approx(1 / 3)
    assert r["prototypes"]["all"]["accuracy"] >= 0.7
    assert r["prototypes"]["5"]["accuracy"] >= 0.6 and r["prototypes"]["5"]["episodes"] == 5
    assert r["knn"]["weighted"]["accuracy"] >= 0.9
    assert r["diffusion_classifier"] == {"skipped": "disabled"}
    assert (tmp_path / "zeroshot.md").read_text().startswith("# Zero-shot")


def test_prototype_and_knn_rules():
    ref = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    y = np.array([0, 0, 2, 2])  # class 1 has no reference: never predicted
    q = np.array([[1, 0.2], [0.2, 1], [0.7, 0.7]], np.float32)
    assert prototype_predict(ref, y, q, 3).tolist()[:2] == [0, 2]
    assert knn_predict(ref, y, q[:2], 3, k=3)["weighted"].tolist() == [0, 2]
    refs = sample_references(np.array([0, 0, 0, 1, 2, 2]), 2, np.random.default_rng(0))
    assert np.bincount(np.array([0, 0, 0, 1, 2, 2])[refs]).tolist() == [2, 1, 2]


def _oracle_setup(n_classes=30, n_images=12, size=8, seed=0):
    """Class templates as prototypes, and a denoiser that knows x0 exactly when given the right template:
    eps_hat = (x_t - sqrt(abar) T) / sqrt(1 - abar). Images are templates plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(n_classes, size * size, generator=g) * 2 - 1
    truth = torch.randint(0, n_classes, (n_images,), generator=g)
    x0 = (templates[truth] + 0.3 * torch.randn(n_images, size * size, generator=g)).view(-1, 1, size, size)
    alphas = make_scheduler().alphas_cumprod

    def denoise(xt, t, r):
        a = alphas[t].view(-1, 1, 1, 1)
        return (xt - a.sqrt() * r.view(-1, 1, size, size)) / (1 - a).sqrt()

    return denoise, x0, templates, truth, list(range(100, 100 + n_images))


def test_diffusion_classifier_finds_the_true_class_and_pruning_cuts_calls():
    denoise, x0, templates, truth, seeds = _oracle_setup()
    pruned, calls = diffusion_classify(denoise, x0, templates, seeds, ((2, 5), (4, 2), (8, 1)), batch_size=64)
    exhaustive, all_calls = diffusion_classify(denoise, x0, templates, seeds, ((14, 1),), batch_size=64)
    assert (pruned == truth.numpy()).all() and (exhaustive == truth.numpy()).all()
    assert calls == 2 * 30 + 4 * 5 + 8 * 2 and all_calls == 14 * 30 and calls < all_calls
    # Candidates are tracked by index through pruning: permuted prototypes give permuted answers.
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    again, _ = diffusion_classify(denoise, x0, templates[perm], seeds, ((2, 5), (4, 2), (8, 1)))
    assert (perm[again] == truth).all()


def test_diffusion_classifier_takes_one_conditioning_vector_per_image_and_class():
    """condition = "nearest" gives every image its own r per class: candidate c of image i is scored with
    prototypes[i, c]. Each image here sees the templates in its own order and must find where its class sits."""
    denoise, x0, templates, truth, seeds = _oracle_setup(n_classes=6)
    perms = torch.stack([torch.randperm(6, generator=torch.Generator().manual_seed(i)) for i in range(len(x0))])
    pred, _ = diffusion_classify(denoise, x0, templates[perms], seeds, ((2, 3), (4, 1)))
    assert (perms[torch.arange(len(x0)), torch.from_numpy(pred)] == truth).all()
    with pytest.raises(DiffprobeError, match="condition"):
        DiffusionClassifierConfig(condition="mean")


def test_diffusion_classifier_compares_classes_on_the_same_t_and_eps():
    """The error of the true class is only lowest when every class sees the same (t, eps): with a denoiser that
    ignores r, every class ties, and the stable ranking returns the first candidate, never a lucky draw."""
    denoise, x0, templates, truth, seeds = _oracle_setup(n_classes=5)
    blind = lambda xt, t, r: denoise(xt, t, torch.zeros_like(r))  # noqa: E731
    pred, _ = diffusion_classify(blind, x0, templates, seeds, ((3, 2), (3, 1)))
    assert (pred == 0).all()


def test_diffusion_classifier_timesteps_from_the_conditioning_diagnostic(tmp_path):
    gaps = {"0-250": (0.30, 0.36), "250-500": (0.10, 0.13), "500-750": (0.05, 0.06), "750-1000": (0.02, 0.021)}
    write_json(tmp_path / "summary.json", {"conditioning": {
        **{b: {"own": own, "shuffled": sh, "null": sh, "gap": sh - own} for b, (own, sh) in gaps.items()},
        "all": {"own": 0.1, "shuffled": 0.2, "null": 0.2, "gap": 0.1}}})
    # Relative gaps 20%, 30%, 20%, 5%: the relative gap counts, not the absolute one (largest at 0-250)
    assert diagnostic_t_range(tmp_path) == (250, 500)
    with pytest.raises(DiffprobeError, match="no conditioning diagnostic"):
        diagnostic_t_range(tmp_path / "missing")
    assert DiffusionClassifierConfig(t_range="500,1000").t_range == (500, 1000)
    assert DiffusionClassifierConfig(t_range="auto").t_range == "auto"
    for bad in ("high", "900,100", "1,2,3", (0, 1001)):
        with pytest.raises(DiffprobeError, match="LOW"):
            DiffusionClassifierConfig(t_range=bad)


@pytest.mark.parametrize("condition", ["prototype", "nearest"])
def test_diffusion_classifier_on_an_rcdit(rcdit_backbone, synth_images, tmp_path, condition):
    cfg = ZeroShotConfig(shots=(1, 0), episodes=2, positive="spiny_*",
                         diffusion=DiffusionClassifierConfig(schedule=((1, 3), (2, 1)), max_images=8,
                                                             condition=condition))
    r = zeroshot(rcdit_backbone, synth_images, tmp_path, cfg, progress=False)
    dc = r["diffusion_classifier"]
    assert dc["n_images"] == 8 and dc["n_candidates"] == 8 and dc["condition"] == condition
    assert dc["calls_per_image"] == 1 * 8 + 2 * 3 < dc["exhaustive_calls_per_image"] == 3 * 8
    assert 0 <= dc["accuracy"] <= 1
    b = r["binary"]
    assert b["positive_classes"] == ["spiny_long", "spiny_short"]
    assert {"two_prototypes", "class_prototypes", "knn", "diffusion_classifier"} <= set(b)
    assert set(b["knn"]) == {"accuracy", "balanced_accuracy", "f1", "precision", "recall"}
    saved = read_json(tmp_path / "zeroshot.json")
    assert saved["prototypes"].keys() == {"1", "all"}
    assert "denoiser calls per image" in (tmp_path / "zeroshot.md").read_text()


def test_other_backbones_choose_a_representation_and_skip_the_diffusion_classifier(tiny_run, synth_images,
                                                                                   tmp_path):
    with pytest.raises(DiffprobeError, match="--block and --timestep"):
        zeroshot(tiny_run, synth_images, tmp_path, ZeroShotConfig(), progress=False)
    with pytest.raises(DiffprobeError, match="give --timestep"):
        zeroshot(tiny_run, synth_images, tmp_path, ZeroShotConfig(block="mid"), progress=False)
    r = zeroshot(tiny_run, synth_images, tmp_path, ZeroShotConfig(block="mid", timestep=10, shots=(0,)),
                 progress=False)
    assert r["backbone"] == "ddpm_unet" and r["representation"] == {"block": "mid", "timestep": 10}
    assert "needs a denoiser conditioned" in r["diffusion_classifier"]["skipped"]


class _StatsBackbone(Backbone):
    """A backbone without timesteps and two blocks of hand-made features (area, width, height; or noise)."""

    kind = "stats"

    def block_names(self):
        return ["noise", "stats"]

    def content_hash(self):
        return "stats"

    def features_batch(self, images, spec):
        fg = images > 128
        stats = [fg.mean((1, 2)), fg.any(1).mean(1), fg.any(2).mean(1)]
        feats = {"stats": np.stack(stats, 1).astype(np.float32),
                 "noise": np.random.default_rng(0).normal(size=(len(images), 3)).astype(np.float32)}
        return {(b, t): feats[b] for b in (spec.blocks or self.block_names()) for t in spec.timesteps}


def test_any_backbone_with_a_representation(tmp_path):
    arr = _easy_images()
    backbone = _StatsBackbone(tmp_path, torch.nn.Identity(), 16)
    with pytest.raises(DiffprobeError, match="several blocks"):
        zeroshot(backbone, arr, tmp_path, ZeroShotConfig(), progress=False)
    cfg = ZeroShotConfig(block="stats", shots=(0,), positive="disc")
    r = zeroshot(backbone, arr, tmp_path, cfg, progress=False)
    assert r["representation"] == {"block": "stats", "timestep": 0} and r["dim"] == 3
    assert r["prototypes"]["all"]["accuracy"] >= 0.9 and r["binary"]["two_prototypes"]["f1"] >= 0.9
    assert "skipped" in r["diffusion_classifier"]
    noise = zeroshot(backbone, arr, tmp_path, ZeroShotConfig(block="noise", shots=(0,), diffusion=None),
                     progress=False)
    assert noise["prototypes"]["all"]["accuracy"] < 0.6  # features without signal stay near chance


def test_positive_pattern_must_split_the_classes():
    assert positive_classes(["copepod_a", "copepod_b", "fish"], "copepod_*").tolist() == [True, True, False]
    with pytest.raises(DiffprobeError, match="matches none"):
        positive_classes(["a", "b"], "copepod_*")
    with pytest.raises(DiffprobeError, match="every class"):
        positive_classes(["a", "b"], "*")


def test_cli_pretrain_and_zeroshot(synth_split, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["rcdit-pretrain", "--data", str(synth_split), "--out", str(run), "--image-size", "16",
                 "--enc-dim", "16", "--enc-depth", "1", "--enc-heads", "2", "--dit-dim", "16", "--dit-depth", "1",
                 "--dit-heads", "2", "--steps", "3", "--batch-size", "8", "--checkpoint-every", "0",
                 "--prediction", "v_prediction"]) == 0
    assert (run / "rcdit.safetensors").is_file() and (run / "samples.png").is_file()
    assert read_json(run / "backbone.json")["model"]["prediction"] == "v_prediction"
    out = tmp_path / "zs"
    assert main(["zeroshot", "--model", str(run), "--data", str(run / "split.csv"), "--out", str(out),
                 "--shots", "1,0", "--episodes", "2", "--positive", "chain_*", "--dc-schedule", "1:2,1:1",
                 "--dc-max-images", "4", "--dc-t-range", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "denoiser calls per image" in printed and (out / "zeroshot.json").is_file()
    # 'auto' reads the timesteps from the run's own conditioning diagnostic
    assert read_json(out / "zeroshot.json")["diffusion_classifier"]["t_range"] == list(diagnostic_t_range(run))
    assert main(["zeroshot", "--model", str(run), "--data", str(run / "split.csv"), "--out", str(out),
                 "--positive", "nothing_*", "--no-diffusion"]) == 2
    assert "matches none" in capsys.readouterr().err


def test_cli_takes_the_probe_best_pair(tiny_run, synth_split, tmp_path, capsys):
    from diffprobe.utils import write_json

    results = write_json(tmp_path / "results.json", {"best": {"block": "up0", "timestep": 5},
                                                     "feature_spec": {"pooling": "avgmax", "n_noise": 1}})
    out = tmp_path / "zs"
    assert main(["zeroshot", "--model", str(tiny_run), "--data", str(synth_split), "--out", str(out),
                 "--results", str(results), "--shots", "0"]) == 0
    r = read_json(out / "zeroshot.json")
    assert r["representation"] == {"block": "up0", "timestep": 5} and r["config"]["pooling"] == "avgmax"
    assert "skipped" in r["diffusion_classifier"] and "skipped" in capsys.readouterr().out

"""Commands write inside their --out only: the current folder, the data and the model stay untouched."""

import os

import numpy as np
from PIL import Image

from diffprobe.cli import main
from diffprobe.data import read_image


def _snapshot(*roots):
    return {os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs}


def test_probe_evaluate_predict_shift_write_only_under_out(tiny_probe, tiny_store, synth_split, synth_dir, tmp_path,
                                                           monkeypatch):
    probe_out, _ = tiny_probe
    bundle = probe_out / "bundle"
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _snapshot(work, synth_dir, bundle, tiny_store.path)
    outs = [tmp_path / n for n in ("probe", "eval", "pred", "shift")]
    assert main(["probe", "--features", str(tiny_store.path), "--out", str(outs[0]), "--epochs", "3"]) == 0
    assert main(["evaluate", "--model", str(bundle), "--data", str(synth_split), "--part", "test",
                 "--out", str(outs[1])]) == 0
    assert main(["predict", "--model", str(bundle), str(synth_dir / "chain_five"),
                 "--out", str(outs[2] / "preds.csv")]) == 0
    assert main(["shift", "--model", str(bundle), "--data", str(synth_split), "--shifts", "noise",
                 "--severities", "3", "--out", str(outs[3])]) == 0
    assert _snapshot(work, synth_dir, bundle, tiny_store.path) == before
    for o in outs:
        assert any(o.iterdir())


def test_a_real_20000_px_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "huge.jpg"
    im = Image.new("L", (20000, 20000), 240)
    im.paste(30, (9000, 9000, 11000, 11000))  # a dark organism in the middle
    im.save(path, quality=50)
    del im
    out = read_image(path)
    assert max(out.shape) <= 2500  # decoded at 1/8 scale, never 400 MP at full size
    h, w = out.shape
    assert out[h // 2, w // 2] < 0.3 and out[5, 5] > 0.8
    assert np.isfinite(out).all()

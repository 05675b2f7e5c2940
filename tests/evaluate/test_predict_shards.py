"""A large collection: predict works in saved shards, resumes after a crash without redoing finished shards, and
two processes under torchrun write the same CSV as one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from diffprobe.utils import DiffprobeError
from diffprobe.workflows import predict
from diffprobe.workflows.predict import predict_files


class PowerCut(Exception):
    pass


def _folder(field_run, tmp_path, n=23):
    root = tmp_path / "images"
    root.mkdir()
    files = sorted(field_run["data"].rglob("*.png"))[:n]
    for k, f in enumerate(files):
        (root / f"{k:03d}_{f.name}").write_bytes(f.read_bytes())
    (root / "000_broken.png").write_bytes(b"not a png")  # sorts first: a skipped file in the first shard
    return root


def test_shards_give_the_rows_of_one_pass_and_resume_after_a_crash(field_run, tmp_path, monkeypatch):
    images = _folder(field_run, tmp_path)
    whole = tmp_path / "whole.csv"
    predict_files(field_run["bundle"], [images], whole, shard_size=1000, batch_size=4, progress=False)
    calls, crash_at = [], [3]
    real = predict.classify_files

    def crashing(bundle, paths, **kw):
        calls.append(len(paths))
        if len(calls) == crash_at[0]:
            crash_at[0] = None
            raise PowerCut  # the machine went down in the third shard
        return real(bundle, paths, **kw)

    monkeypatch.setattr(predict, "classify_files", crashing)
    out = tmp_path / "sharded.csv"
    with pytest.raises(PowerCut):
        predict_files(field_run["bundle"], [images], out, shard_size=8, batch_size=4, progress=False)
    parts = tmp_path / "sharded.parts"
    assert sorted(p.name for p in parts.glob("shard-*.npz")) == ["shard-000000.npz", "shard-000001.npz"]
    assert not out.exists()
    calls.clear()
    r = predict_files(field_run["bundle"], [images], out, shard_size=8, batch_size=4, progress=False)
    assert calls == [8], "only the unfinished shard (the last, 8 of 24 files) is classified again"
    assert out.read_text() == whole.read_text().replace(str(whole), str(out))
    assert r["n_images"] == 23 and r["n_skipped"] == 1 and not parts.exists()
    # Shards of other inputs are not mixed in: a run on other images starts again.
    (images / "010_extra.png").write_bytes(next(iter(sorted(images.glob("00[1-9]_*.png")))).read_bytes())
    parts.mkdir()
    (parts / "key.json").write_text('{"key": "another run"}')
    (parts / "shard-000000.npz").write_bytes(b"stale")
    calls.clear()
    predict_files(field_run["bundle"], [images], out, shard_size=8, batch_size=4, progress=False)
    assert calls == [8, 8, 8, 1]  # 25 files now
    with pytest.raises(DiffprobeError, match="shard_size"):
        predict_files(field_run["bundle"], [images], out, shard_size=0, progress=False)


@pytest.mark.slow  # two processes start
def test_two_processes_write_the_same_csv_as_one(field_run, tmp_path):
    images = _folder(field_run, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for n in (1, 2):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"] \
            if n > 1 else [sys.executable]
        outs[n] = tmp_path / f"p{n}.csv"
        proc = subprocess.run([*launcher, "-m", "diffprobe.cli", "predict", "--model", str(field_run["bundle"]),
                               str(images), "--out", str(outs[n]), "--shard-size", "8", "--batch-size", "4",
                               "--precision", "fp32"], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert outs[1].read_text() == outs[2].read_text()
    assert len(outs[1].read_text().splitlines()) == 24  # header + 23 readable images

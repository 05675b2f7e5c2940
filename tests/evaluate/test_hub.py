"""Hugging Face Hub support of classifier bundles, offline: from_pretrained("org/name") resolves a repo
from a local Hub cache (the layout snapshot_download writes), push_to_hub uploads what save_pretrained
writes (HfApi's network calls replaced by recorders)."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest

from diffprobe import ClassifierBundle
from diffprobe.utils import DiffprobeError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _images(field_run, n=4):
    return sorted((field_run["data"] / "spiny_long").glob("*.png"))[:n] + \
        sorted((field_run["data"] / "chain_five").glob("*.png"))[:n]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub cache, offline: the environment and huggingface_hub's constants (read at import) point to it."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def _cache_repo(cache: Path, repo_id: str, bundle_dir: Path, commit: str = COMMIT) -> Path:
    """Put a bundle in the cache as a downloaded snapshot: models--org--name/snapshots/<commit>/, refs/main."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    shutil.copytree(bundle_dir, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def test_from_pretrained_resolves_a_hub_repo_id_from_the_cache(field_run, hub_cache):
    local = ClassifierBundle.from_pretrained(field_run["bundle"])
    snap = _cache_repo(hub_cache, "plankton-lab/tiny-bundle", field_run["bundle"])
    (snap / "stray.bin").write_bytes(b"not a pickle to load")  # never read: bundles load safetensors only
    hub = ClassifierBundle.from_pretrained("plankton-lab/tiny-bundle", local_files_only=True)
    assert hub.path.resolve() == snap.resolve()
    assert hub.meta == local.meta
    files = _images(field_run)
    np.testing.assert_array_equal(hub.predict_proba(files), local.predict_proba(files))
    # a revision (the commit) and an explicit cache folder resolve the same snapshot
    again = ClassifierBundle.from_pretrained("plankton-lab/tiny-bundle", revision=COMMIT, local_files_only=True,
                                             cache_dir=hub_cache)
    assert again.path.resolve() == snap.resolve()


def test_an_existing_local_folder_wins_over_the_hub(field_run, hub_cache, tmp_path, monkeypatch):
    (tmp_path / "org").mkdir()
    shutil.copytree(field_run["bundle"], tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)

    def no_hub(*a, **kw):
        raise AssertionError("the Hub was asked for a local folder")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    assert ClassifierBundle.from_pretrained("org/name").path == Path("org/name")


def test_a_missing_repo_id_names_both_places(field_run, hub_cache):
    with pytest.raises(DiffprobeError, match=r"no folder 'nobody/nothing' here, and the Hugging Face Hub could "
                                             r"not provide it \(.*Error"):
        ClassifierBundle.from_pretrained("nobody/nothing", local_files_only=True)
    _cache_repo(hub_cache, "plankton-lab/tiny-bundle", field_run["bundle"])
    with pytest.raises(DiffprobeError, match="could not provide"):  # a revision that is not cached
        ClassifierBundle.from_pretrained("plankton-lab/tiny-bundle", revision="v9", local_files_only=True)
    # not a repo id (and not a folder): the folder error, the Hub not asked
    with pytest.raises(DiffprobeError, match="bundle.json missing"):
        ClassifierBundle.from_pretrained("./no/such/bundle/here")


def test_push_to_hub_uploads_the_saved_bundle(field_run, tmp_path, monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create_repo"] = (repo_id, kw)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls["upload_folder"] = (repo_id, kw)
        folder = Path(folder_path)
        calls["files"] = sorted(p.name for p in folder.iterdir())
        shutil.copytree(folder, tmp_path / "uploaded")  # the temporary folder is gone after the push
        return "https://huggingface.co/plankton-lab/tiny-bundle/commit/" + COMMIT

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    bundle = ClassifierBundle.from_pretrained(field_run["bundle"])
    bundle.meta["temperature"] = 1.4
    out = bundle.push_to_hub("plankton-lab/tiny-bundle", token="hf_test", private=True, commit_message="v1")
    assert out.endswith(COMMIT)
    repo_id, kw = calls["create_repo"]
    assert repo_id == "plankton-lab/tiny-bundle" and kw["exist_ok"] is True and kw["private"] is True
    assert kw["token"] == "hf_test"
    repo_id, kw = calls["upload_folder"]
    assert repo_id == "plankton-lab/tiny-bundle" and kw["commit_message"] == "v1" and kw["token"] == "hf_test"
    assert calls["files"] == ["backbone", "bundle.json", "probe.safetensors"]
    back = ClassifierBundle.from_pretrained(tmp_path / "uploaded")
    assert back.temperature == 1.4
    files = _images(field_run, 2)
    np.testing.assert_array_equal(back.predict_proba(files), bundle.predict_proba(files))

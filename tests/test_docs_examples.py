"""The Python examples of the docs run: every ```python block of docs/*.md and README.md, so none drifts
from the API.

Convention: a page's blocks run in page order in one namespace (a later block may use names an earlier
one made), unless the line before a block is ``<!-- no-test: why -->`` (e.g. it downloads from the
internet). They run with a sandbox folder as the working directory, standing in for a user's project:
the relative paths the examples use exist there, made from tiny models trained here (16 px, a few steps):

    data/ndsb/images/<class>/<image>   8 stand-in classes with NDSB names, 12 synthetic images each
    runs/ndsb/split.csv                their split
    runs/ndsb/ddpm                     a DDPM U-Net pretraining run
    runs/ndsb/bundle                   a classifier bundle on that U-Net (linear head)
    models/ndsb                        a reading ensemble of that bundle twice, members s1 and rot (as shipped)
    runs/ndsb/rcdit                    an RC-DiT pretraining run
    crop1.jpg, crop2.png, a.jpg, b.png images to classify

An example that needs another file adds it to ``sandbox`` below.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
SKIP = re.compile(r"<!--\s*no-test\b.*?-->\s*$")

# The synthetic shapes under the names of NDSB classes (two copepods, so 'copepod_*' picks a part).
NDSB_NAMES = {"elongated_thin": "chaetognath_sagitta", "elongated_thick": "copepod_calanoid",
              "spiny_short": "acantharia_protist", "spiny_long": "radiolarian_colony",
              "chain_three": "diatom_chain_string", "chain_five": "trichodesmium_puff",
              "appendage_two": "copepod_cyclopoid_oithona", "appendage_four": "shrimp_caridean"}


def examples(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of the page's runnable python blocks."""
    text = page.read_text()
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not SKIP.search(before):
            found.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return found


PAGES_WITH_EXAMPLES = [p for p in PAGES if examples(p)]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    import torch

    from diffprobe.backbones import UNetConfig
    from diffprobe.backbones.rcdit import RCDiTConfig
    from diffprobe.data import Preprocess, load_images, prepare_split
    from diffprobe.features import FeatureSpec, extract_features
    from diffprobe.pretrain import PretrainConfig, pretrain
    from diffprobe.pretrain.rcdit import RCDiTPretrainConfig, pretrain_rcdit
    from diffprobe.probe import GridProbe, build_ensemble
    from diffprobe.workflows.datasets import write_synthetic
    from diffprobe.workflows.probe import run_probe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread hand-offs cost more than the work (BLAS too, below)
    blas = threadpool_limits(1)
    root = tmp_path_factory.mktemp("docs-sandbox")
    images = write_synthetic(root / "data" / "ndsb" / "images", n_per_class=12, size=32, seed=0)
    for shape, name in NDSB_NAMES.items():
        (images / shape).rename(images / name)
    runs = root / "runs" / "ndsb"
    manifest = prepare_split(images, seed=0)
    manifest.save(runs / "split.csv")
    arr = load_images(manifest, Preprocess(16), progress=False)
    train = arr.part("train")[0]
    pretrain(train, runs / "ddpm", PretrainConfig(unet=UNetConfig(image_size=16, channels=(16, 32)), steps=10,
                                                  batch_size=16, warmup_steps=2, checkpoint_every=1000, seed=0),
             progress=False, sample=False)
    store = extract_features(runs / "ddpm", arr, FeatureSpec(timesteps=(10,), blocks=("mid", "up1")),
                             root / "features", progress=False)
    run_probe(store, root / "probe", probe=GridProbe(epochs=20, seed=0))
    shutil.copytree(root / "probe" / "bundle", runs / "bundle")
    build_ensemble([runs / "bundle", runs / "bundle"], root / "models" / "ndsb", names=["s1", "rot"])
    tiny_dit = RCDiTConfig(image_size=16, enc_patch=4, enc_dim=32, enc_depth=2, enc_heads=2, dit_patch=4, dit_dim=32,
                           dit_depth=2, dit_heads=2)
    pretrain_rcdit(train, runs / "rcdit", RCDiTPretrainConfig(model=tiny_dit, steps=10, batch_size=16, warmup_steps=2,
                                                              checkpoint_every=1000, seed=0), progress=False)
    some = sorted(images.rglob("*.png"))
    for k, name in enumerate(("crop1.jpg", "crop2.png", "a.jpg", "b.png")):
        Image.open(some[k * 11]).save(root / name)  # in the format the suffix names
    yield root
    blas.restore_original_limits()
    torch.set_num_threads(threads)


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_pages_python_examples_run(page, sandbox, monkeypatch):
    monkeypatch.chdir(sandbox)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for line, code in examples(page):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)  # noqa: S102 - the docs' code
        except Exception as e:  # noqa: BLE001 - report where in the docs
            pytest.fail(f"{page.relative_to(ROOT)}, the python block at line {line} fails: {type(e).__name__}: {e}\n"
                        f"(fix the example, or mark it <!-- no-test: why --> where it cannot run here)")


def test_the_convention_finds_and_skips_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text\n\n```python\nx = 1\n```\n\n<!-- no-test: downloads -->\n```python\nfetch()\n```\n"
                    "```bash\nls\n```\n")
    assert examples(page) == [(4, "x = 1\n")]

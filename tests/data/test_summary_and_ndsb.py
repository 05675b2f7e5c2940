import json

import pytest

from diffprobe.cli import main
from diffprobe.data import scan_folder
from diffprobe.workflows.datasets import summarize, write_synthetic


def test_summary_writes_counts_plot_and_contact_sheet(tmp_path):
    root = write_synthetic(tmp_path / "lt", n_per_class=40, long_tail=True, imbalance=10, seed=0)
    s = summarize(scan_folder(root), tmp_path / "out")
    assert s["n_classes"] == 8 and s["largest"] == 40 and s["smallest"] == 4
    assert s["imbalance_ratio"] == pytest.approx(10.0)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_images"] == s["n_images"]
    for png in ("class_counts.png", "contact_sheet.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000
    # The sheet shows the images as imaged: light-field crops on a white page, not black squares (as when a
    # bright-field image went through the dark-field flat-fielding).
    import numpy as np
    from PIL import Image

    sheet = np.asarray(Image.open(tmp_path / "out" / "contact_sheet.png").convert("L"), float)
    assert (sheet < 40).mean() < 0.05


def test_cli_summary_and_clear_error(tmp_path, capsys, synth_dir):
    assert main(["summary", "--data", str(synth_dir), "--out", str(tmp_path / "s")]) == 0
    assert "320 images in 8 classes" in capsys.readouterr().out
    assert main(["summary", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2
    assert "no such folder or manifest" in capsys.readouterr().err


@pytest.mark.ndsb
def test_ndsb_folder_counts(ndsb_dir):
    """The folder scan finds, class by class, the images the packaged checksum list names (the list the shipped
    model's split was made from), and the long tail the docs describe."""
    from collections import Counter

    from diffprobe.data.integrity import PACKAGED_CHECKSUMS, read_checksums

    m = scan_folder(ndsb_dir)
    listed = Counter(p.split("/")[0] for p in read_checksums(PACKAGED_CHECKSUMS / "ndsb.sha256.gz"))
    assert m.counts() == dict(listed)
    assert max(listed.values()) > 100 * min(listed.values())

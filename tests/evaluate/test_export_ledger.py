"""Every read of a shipped model's test split is on record; the model carries its version."""

from __future__ import annotations

import csv

from diffprobe.cli import main
from diffprobe.utils import read_json
from diffprobe.workflows.export_model import LEDGER_FIELDS


def test_export_records_its_test_read_and_the_model_version(field_run, tmp_path):
    ledger = tmp_path / "results" / "test_reads.csv"
    for version in ("1.0.0", "1.1.0"):
        out = tmp_path / f"model-{version}"
        assert main(["export", str(field_run["bundle"]), "--out", str(out), "--split", str(field_run["split"]),
                     "--model-version", version, "--ledger", str(ledger)]) == 0
        assert read_json(out / "bundle.json")["model_version"] == version
    with open(ledger, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(LEDGER_FIELDS)
    assert [r["model_version"] for r in rows] == ["1.0.0", "1.1.0"]
    metrics = read_json(tmp_path / "model-1.1.0" / "test_metrics.json")
    assert float(rows[1]["accuracy"]) == metrics["accuracy"] and int(rows[1]["n_images"]) == metrics["n_images"]
    # Without --ledger nothing is recorded; without --model-version the bundle's field is left alone.
    assert main(["export", str(field_run["bundle"]), "--out", str(tmp_path / "plain"), "--split",
                 str(field_run["split"])]) == 0
    assert len(ledger.read_text().splitlines()) == 3
    assert "model_version" not in read_json(tmp_path / "plain" / "bundle.json")

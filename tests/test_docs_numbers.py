"""Every result number in a user-facing page comes from a committed result file, and says which.

The convention and the check live in the docs build's hook, ``docs/hooks/numbers.py`` (``mkdocs build
--strict`` fails on the docs pages); here they run on every page, the README and the model card included,
and the headline numbers are checked against the very key they come from.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "models" / "ndsb" / "README.md"
_spec = importlib.util.spec_from_file_location("docs_numbers_hook", ROOT / "docs" / "hooks" / "numbers.py")
numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(numbers)
PAGES = sorted({ROOT / p for p in numbers.STRICT} | set((ROOT / "docs").glob("*.md")))


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def unsourced(page: Path, strict: bool | None = None) -> list[str]:
    strict = _name(page) in numbers.STRICT if strict is None else strict
    return [f"{_name(page)}:{p}" for p in numbers.problems(page.read_text(), strict)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_result_number_of_a_page_is_in_its_sources(page):
    assert not unsourced(page), "\n".join(unsourced(page))


def test_the_check_fails_on_a_stale_or_unsourced_number(tmp_path):
    page = tmp_path / "page.md"
    src = "<!-- src: models/ndsb-diffusion/test_metrics.json -->"  # a model that no longer changes
    page.write_text(f"Test top-1 70.9%, macro F1 0.546. {src}\n")
    assert unsourced(page, strict=True) == []
    page.write_text(f"Test top-1 69.7%, macro F1 0.546. {src}\n")  # the previous model's number
    assert unsourced(page) == ["page.md:1: 69.7% is in none of ['models/ndsb-diffusion/test_metrics.json']"]
    page.write_text("Test top-1 70.9%, weighted 4x, `--steps 3000`, arXiv 2601.13416, Python 3.11.\n")
    assert unsourced(page, strict=True) == ["page.md:1: ['70.9%'] without a source"]
    assert unsourced(page, strict=False) == []
    page.write_text(f"{src}\n\n| model | top-1 |\n|---|---|\n| shipped | 70.9% |\n| old | 64.1% |\n")
    assert unsourced(page) == ["page.md:3: 64.1% is in none of ['models/ndsb-diffusion/test_metrics.json']"]


def test_a_duration_or_count_may_be_recorded_in_other_units():
    src = "<!-- src: benchmarks/results/ndsb_recipe_shape/timing.json -->"  # stages_s: seconds; total_min
    assert numbers.problems(f"Pretraining 63.5 min, features 19.7 min, 86.6 min in all. {src}\n", strict=True) == []
    assert numbers.problems(f"Pretraining 63.5 s. {src}\n", strict=True) == [
        "1: 63.5 is in none of ['benchmarks/results/ndsb_recipe_shape/timing.json']"]
    assert numbers.problems(f"Pretraining 1.1-1.2 h. {src}\n", strict=True) == [
        "1: 1.2 h is in none of ['benchmarks/results/ndsb_recipe_shape/timing.json']"]
    src = "<!-- src: models/ndsb-diffusion/bundle.json#head_config -->"  # refit_images: 20509
    assert numbers.problems(f"Refit on 20.5 k images. {src}\n", strict=True) == []
    assert numbers.problems(f"Refit on 20.6 k images. {src}\n", strict=True) == [
        "1: 20.6 k is in none of ['models/ndsb-diffusion/bundle.json#head_config']"]


def test_a_generated_number_is_the_value_of_its_source_and_is_sourced(tmp_path):
    m = json.loads((ROOT / "models" / "ndsb" / "test_metrics.json").read_text())
    text = "Top-1 {{ models/ndsb/test_metrics.json#accuracy:.1% }}, macro F1 {{models/ndsb/test_metrics.json#macro_f1:.3f}}."
    filled = numbers.fill(text)
    assert filled.startswith(f"Top-1 {100 * m['accuracy']:.1f}%<!-- src: models/ndsb/test_metrics.json#accuracy -->")
    assert numbers.problems(text, strict=True) == []
    with pytest.raises(KeyError):
        numbers.fill("{{ models/ndsb/test_metrics.json#no_such_key:.1% }}")


def test_the_docs_build_warns_on_a_stale_number():
    """The hook logs a warning (an error under mkdocs build --strict) for a page's stale number."""
    import logging

    class Page:  # what the hook reads of mkdocs' page
        class file:
            src_uri = "getting-started.md"

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    numbers.log.addHandler(handler)
    try:
        out = numbers.on_page_markdown("Top-1 69.7%. <!-- src: models/ndsb/test_metrics.json -->\n", Page, {}, None)
    finally:
        numbers.log.removeHandler(handler)
    assert out.startswith("Top-1 69.7%")
    assert [r.getMessage() for r in records] == [
        "docs/getting-started.md:1: 69.7% is in none of ['models/ndsb/test_metrics.json']"]


def _metrics() -> dict:
    return json.loads((ROOT / "models" / "ndsb" / "test_metrics.json").read_text())


def _row(page: Path, label: str) -> list[str]:
    row = next(line for line in page.read_text().splitlines() if line.startswith("|") and label in line)
    return [c.strip().strip("*") for c in row.strip("|").split("|")]


def test_readme_headline_row_is_the_shipped_model_s_test_metrics():
    m = _metrics()
    cells = _row(ROOT / "README.md", "**this model**")
    assert cells[1:4] == [f"{100 * m['accuracy']:.1f}%", f"{m['macro_f1']:.3f}", f"{m['log_loss']:.3f}"]


def _card_header() -> dict:
    text = CARD.read_text()
    assert text.startswith("---\n"), "the model card starts with a Hugging Face YAML header"
    return yaml.safe_load(text[4:text.index("\n---\n", 4)])


def test_model_card_header_and_table_are_the_test_metrics_and_the_bundle_s_version():
    m, header = _metrics(), _card_header()
    bundle = json.loads((ROOT / "models" / "ndsb" / "bundle.json").read_text())
    assert header["license"] == "mit" and header["library_name"] == "diffprobe"
    assert header["model_version"] == bundle["model_version"]
    assert f"`{bundle['model_version']}`" in CARD.read_text()
    results = header["model-index"][0]["results"][0]
    assert results["dataset"]["split"] == "test"
    got = {r["type"]: r["value"] for r in results["metrics"]}
    assert got == {"accuracy": round(m["accuracy"], 4), "f1": round(m["macro_f1"], 4),
                   "log_loss": round(m["log_loss"], 4)}
    cells = _row(CARD, "**this model**")
    assert cells[1:4] == [f"{100 * m['accuracy']:.2f}%", f"{m['macro_f1']:.3f}", f"{m['log_loss']:.3f}"]


def test_the_changelog_names_the_shipped_model_s_version_as_current():
    version = json.loads((ROOT / "models" / "ndsb" / "bundle.json").read_text())["model_version"]
    assert re.search(rf"^### {re.escape(version)} .*current$", (ROOT / "CHANGELOG.md").read_text(), re.M)


@pytest.mark.parametrize("page", [ROOT / "README.md", CARD, ROOT / "CHANGELOG.md", ROOT / "CITATION.cff",
                                  *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_user_facing_pages_name_no_machine_folder(page):
    text = page.read_text()
    assert not re.search(r"\.\./shared|/work/|/home/\w", text), f"{page.name} names a machine's folder"


def test_results_record_no_machine_folder():
    files = [*ROOT.glob("benchmarks/results/**/*"), *ROOT.glob("experiments/*/results/**/*"), *ROOT.glob("results/**/*")]
    bad = [p.relative_to(ROOT).as_posix() for p in files
           if p.suffix in {".json", ".md", ".html", ".log", ".csv"} and p.is_file()
           and re.search(r"\.\./shared/|/work/|/home/\w", p.read_text(errors="replace"))]
    assert not bad, f"results naming a machine's folder (record $DIFFPROBE_DATA/<name> instead): {bad}"

"""Every result number in a user-facing page comes from a committed result file, and says which.

Convention: a block of a page (lines between blank lines, outside code fences; a table is one block) names its
sources in an HTML comment, invisible on GitHub and on the docs site::

    <!-- src: models/ndsb/test_metrics.json benchmarks/results/compare_curves/curves.json -->

written inside the block, or alone in its own block just before it (before a table); ``file.json#a/b``
names one part of a file. Each result number of
a sourced block (a percentage such as ``70.9%`` or a decimal such as ``0.546``) must equal, at the precision
shown, a number in one of its sources (a fraction shown as a percentage counts). In the pages of ``STRICT``,
a result number in a block without sources fails too. Numbers in code (backticks, fences), multipliers such
as ``4x``, targets (``>= 70%``), arXiv identifiers and Python versions are not results.

Beside that generic check, the headline numbers are checked against the very key they come from.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "models" / "ndsb" / "README.md"
STRICT = [ROOT / "README.md", CARD, ROOT / "docs" / "getting-started.md", ROOT / "docs" / "index.md"]
PAGES = sorted(set(STRICT) | set((ROOT / "docs").glob("*.md")))

SOURCE = re.compile(r"<!--\s*src:\s*(.*?)\s*-->", re.S)
FENCE = re.compile(r"^```.*?^```\s*$", re.S | re.M)
NOT_RESULTS = [
    re.compile(r"`[^`\n]*`"),                      # inline code
    re.compile(r"\]\([^)]*\)"),                     # link targets
    re.compile(r"<!--.*?-->", re.S),                # comments (the sources themselves)
    re.compile(r"\b\d{4}\.\d{4,5}\b"),              # arXiv identifiers
    re.compile(r"Python \d+\.\d+"),
    re.compile(r"PlanktonSet \d+\.\d+"),
    re.compile(r"(?:>=|<=|≥|≤)\s*\d+(?:\.\d+)?%?"),   # targets and thresholds, not results
    re.compile(r"\b\d+(?:\.\d+)?x\b"),              # multipliers: 4x, 1.5x wider
    re.compile(r"^---\n.*?\n---\n", re.S),          # a YAML header (checked on its own below)
]
RANGE = re.compile(r"(\d+(?:\.\d+)?)[-–](\d+(?:\.\d+)?)(%?)")
NUMBER = re.compile(r"(?<![\w.,+-])(\d+(?:\.\d+)?)(%?)(?![\w.]*\d)")


def result_numbers(text: str) -> list[str]:
    """The result numbers of a piece of text, as written ('70.9%', '0.546')."""
    for pattern in NOT_RESULTS:
        text = pattern.sub(" ", text)
    text = RANGE.sub(lambda m: f"{m[1]}{m[3]} {m[2]}{m[3]}", text)  # 30.2-31.9%: two percentages
    return [n + pct for n, pct in NUMBER.findall(text) if pct or "." in n]


def blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """(first line, text, sources) of each block of a page; a block that is only a source comment passes
    its sources to the next block."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), page.read_text())
    if text.startswith("---\n"):  # a YAML header: blank it out, lines kept
        end = text.index("\n---\n", 4) + 5
        text = "\n" * text[:end].count("\n") + text[end:]
    out, pending, line = [], [], 1
    for chunk in re.split(r"(\n\s*\n)", text):
        if chunk.strip() and not chunk.isspace():
            sources = [s for m in SOURCE.findall(chunk) for s in m.split()]
            if not SOURCE.sub("", chunk).strip():
                pending = sources
            else:
                out.append((line, chunk, list(dict.fromkeys(sources + pending))))
                pending = []
        line += chunk.count("\n")
    return out


def leaves(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return []


_CACHE: dict[str, list[float]] = {}


def source_numbers(name: str) -> list[float]:
    """The numbers of a source: a committed JSON file, or one part of it (``file.json#key/key/...``)."""
    if name not in _CACHE:
        file, _, pointer = name.partition("#")
        path = ROOT / file
        assert path.is_file() and path.suffix == ".json", f"a source must be a committed JSON file: {name}"
        value = json.loads(path.read_text())
        for key in filter(None, pointer.split("/")):
            value = value[int(key)] if isinstance(value, list) else value[key]
        _CACHE[name] = [x for x in leaves(value) if math.isfinite(x)]
    return _CACHE[name]


def matches(shown: str, values: list[float]) -> bool:
    pct = shown.endswith("%")
    digits = shown.rstrip("%")
    places = len(digits.split(".")[1]) if "." in digits else 0
    x = float(digits)
    tol = 0.5 * 10 ** -places + 1e-9
    return any(abs(v * 100 - x) <= tol or abs(v - x) <= tol for v in values) if pct else \
        any(abs(v - x) <= tol for v in values)


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def unsourced(page: Path, strict: bool | None = None) -> list[str]:
    strict = page in STRICT if strict is None else strict
    problems = []
    for line, text, sources in blocks(page):
        numbers = result_numbers(text)
        if not numbers:
            continue
        if not sources:
            if strict:
                problems.append(f"{_name(page)}:{line}: {numbers} without a source")
            continue
        values = [v for s in sources for v in source_numbers(s)]
        problems += [f"{_name(page)}:{line}: {n} is in none of {sources}" for n in numbers if not matches(n, values)]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_result_number_of_a_page_is_in_its_sources(page):
    assert not unsourced(page), "\n".join(unsourced(page))


def test_the_check_fails_on_a_stale_or_unsourced_number(tmp_path):
    page = tmp_path / "page.md"
    src = "<!-- src: models/ndsb/test_metrics.json -->"
    page.write_text(f"Test top-1 70.9%, macro F1 0.546. {src}\n")
    assert unsourced(page, strict=True) == []
    page.write_text(f"Test top-1 69.7%, macro F1 0.546. {src}\n")  # the previous model's number
    assert unsourced(page) == ["page.md:1: 69.7% is in none of ['models/ndsb/test_metrics.json']"]
    page.write_text("Test top-1 70.9%, weighted 4x, `--steps 3000`, arXiv 2601.13416, Python 3.11.\n")
    assert unsourced(page, strict=True) == ["page.md:1: ['70.9%'] without a source"]
    assert unsourced(page, strict=False) == []
    page.write_text(f"{src}\n\n| model | top-1 |\n|---|---|\n| shipped | 70.9% |\n| old | 64.1% |\n")
    assert unsourced(page) == ["page.md:3: 64.1% is in none of ['models/ndsb/test_metrics.json']"]


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
    files = [*ROOT.glob("benchmarks/results/**/*"), *ROOT.glob("results/**/*")]
    bad = [p.relative_to(ROOT).as_posix() for p in files
           if p.suffix in {".json", ".md", ".html", ".log", ".csv"} and p.is_file()
           and re.search(r"\.\./shared/|/work/|/home/\w", p.read_text(errors="replace"))]
    assert not bad, f"results naming a machine's folder (record $DIFFPROBE_DATA/<name> instead): {bad}"

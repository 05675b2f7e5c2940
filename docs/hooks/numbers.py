"""MkDocs hook: the docs' result numbers come from committed result files, and say which.

Two conventions, one check (the same code runs in ``tests/test_docs_numbers.py``, for the README and the model
card too, which GitHub and the Hugging Face Hub show as written):

- **Generated**: ``{{ models/ndsb/test_metrics.json#accuracy:.1% }}`` (a JSON file, an optional path of keys
  into it, a Python format spec) is replaced by the value when the site is built: ``70.5%``.
- **Typed, with its source**: a block of a page (lines between blank lines, outside code fences; a table is one
  block) names its sources in an HTML comment, ``<!-- src: FILE.json[#key/key] ... -->`` (or a script's
  Markdown table, ``benchmarks/results/NAME.md`` or ``experiments/NAME/results/NAME.md``, for the means and
  spreads it computed), written inside the
  block or alone in its own block just before it (before a table). Each result number of a sourced block (a
  percentage such as ``70.9%`` or a decimal such as ``0.546``) must equal, at the precision shown, a number in
  one of its sources (a fraction shown as a percentage counts; a duration shown in ``min`` or ``h`` may be
  recorded in seconds, minutes or hours, a count shown in ``k`` or ``M`` as the count itself). In the pages of ``STRICT``, a result number in
  a block without sources is an error too. Numbers in code (backticks, fences), multipliers such as ``4x``,
  targets (``>= 70%``), arXiv identifiers and version numbers of named software are not results.

During ``mkdocs build`` every problem is logged as an error, so ``--strict`` fails on a stale or unsourced number
(a warning would not do: ``--quiet`` hides warnings from ``--strict``'s count).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Pages where every result number needs a source (relative to the repository root).
STRICT = ["README.md", "models/ndsb/README.md", "docs/getting-started.md", "docs/index.md", "docs/tutorial-ndsb.md",
          "docs/data.md", "docs/reliability.md", "docs/study.md", "docs/model-card.md", "docs/cli.md", "docs/api.md",
          "docs/recipe.md", "docs/comparison.md", "docs/adaptation.md",
          "docs/method.md", "docs/field-use.md", "docs/app.md", "docs/results.md", "docs/performance.md",
          "docs/rcdit.md", "docs/development.md"]

PLACEHOLDER = re.compile(r"\{\{\s*([\w./-]+\.json)(?:#([\w./-]*))?\s*:\s*([^}\s]*)\s*\}\}")
SOURCE = re.compile(r"<!--\s*src:\s*(.*?)\s*-->", re.S)
FENCE = re.compile(r"^```.*?^```\s*$", re.S | re.M)
NOT_RESULTS = [
    re.compile(r"`[^`\n]*`"),                          # inline code
    re.compile(r"\]\([^)]*\)"),                         # link targets
    re.compile(r"<!--.*?-->", re.S),                    # comments (the sources themselves)
    re.compile(r"\b\d{4}\.\d{4,5}\b"),                  # arXiv identifiers
    re.compile(r"(?:Python|PlanktonSet) \d+\.\d+"),     # versions of named things
    re.compile(r"(?:>=|<=|≥|≤)\s*\d+(?:\.\d+)?%?"),     # targets and thresholds, not results
    re.compile(r"\b\d+(?:\.\d+)?x\b"),                  # multipliers: 4x, 1.5x wider
]
UNIT = r"( ?(?:min|h|k|M)\b)?"  # a duration's unit (its source may hold seconds) or a count's (thousands, millions)
RANGE = re.compile(r"(\d+(?:\.\d+)?)[-–](\d+(?:\.\d+)?)(%?)" + UNIT)
NUMBER = re.compile(r"(?<![\w.,+-])(\d+(?:\.\d+)?)(%?)(?![\w.]*\d)" + UNIT)
SCALES = {"": (1,), "min": (1, 60), "h": (1, 60, 3600), "k": (1, 1e3), "M": (1, 1e6)}  # what a shown unit may stand for

log = logging.getLogger("mkdocs.hooks.numbers")


RESULT_DIRS = ("benchmarks/results/", "experiments/", "results/", "models/")  # JSON results; Markdown: the scripts' tables only
TABLE_DIRS = ("benchmarks/results/", "experiments/", "results/", "models/ndsb/test_report/")


def load(source: str):
    """A source's value: a committed JSON result file, or one part of it (``file.json#key/key/...``); or the
    numbers of a Markdown table a benchmark wrote beside its JSON (``benchmarks/results/NAME.md``)."""
    file, _, pointer = source.partition("#")
    path = ROOT / file
    if not (path.is_file() and (path.suffix == ".json" and file.startswith(RESULT_DIRS)
                                or path.suffix == ".md" and file.startswith(TABLE_DIRS)
                                and (not file.startswith("experiments/") or "/results/" in file))):
        raise ValueError(f"a source must be a committed result file (JSON, or a benchmark's .md): {source}")
    if path.suffix == ".md":
        return [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", path.read_text().replace(",", ""))]
    value = json.loads(path.read_text())
    for key in filter(None, pointer.split("/")):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


CODE = re.compile(r"(^```.*?^```\s*$|`[^`\n]*`)", re.S | re.M)


def fill(markdown: str) -> str:
    """Each ``{{ file.json#keys:spec }}`` outside code replaced by its formatted value, followed by its source
    comment. An unknown file or key raises (the build stops)."""
    def one(m: re.Match) -> str:
        source = m[1] + (f"#{m[2]}" if m[2] else "")
        return f"{format(load(source), m[3])}<!-- src: {source} -->"
    parts = CODE.split(markdown)  # odd indices: code, left as written
    return "".join(p if i % 2 else PLACEHOLDER.sub(one, p) for i, p in enumerate(parts))


def result_numbers(text: str) -> list[str]:
    """The result numbers of a piece of text, as written ('70.9%', '0.546')."""
    for pattern in NOT_RESULTS:
        text = pattern.sub(" ", text)
    text = RANGE.sub(lambda m: f"{m[1]}{m[3]}{m[4] or ''} {m[2]}{m[3]}{m[4] or ''}", text)  # 30.2-31.9%: two
    return [n + pct + unit for n, pct, unit in NUMBER.findall(text) if pct or "." in n]


def blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line, text, sources) of each block of a page; a block that is only a source comment passes
    its sources to the next block."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    if text.startswith("---\n") and "\n---\n" in text[4:]:  # a YAML header: blanked out, lines kept
        end = text.index("\n---\n", 4) + 5
        text = "\n" * text[:end].count("\n") + text[end:]
    out, pending, line = [], [], 1
    for chunk in re.split(r"(\n\s*\n)", text):
        if chunk.strip():
            sources = [s for m in SOURCE.findall(chunk) for s in m.split()]
            if not SOURCE.sub("", chunk).strip():
                pending = sources
            else:
                out.append((line, chunk, list(dict.fromkeys(sources + pending))))
                pending = []
        line += chunk.count("\n")
    return out


def _leaves(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return []


def matches(shown: str, values: list[float]) -> bool:
    """Whether a number as shown ('70.9%', '0.546', '63.5 min') is one of values at the precision shown."""
    digits, unit = re.fullmatch(r"([\d.]+)%? ?(min|h|k|M)?", shown).groups("")
    places = len(digits.split(".")[1]) if "." in digits else 0
    x, tol = float(digits), 0.5 * 10 ** -places + 1e-9
    if shown.endswith("%"):
        return any(abs(v * 100 - x) <= tol or abs(v - x) <= tol for v in values)
    return any(abs(v / s - x) <= tol for v in values for s in SCALES[unit])


def problems(markdown: str, strict: bool) -> list[str]:
    """'LINE: what is wrong' for each stale or (in a strict page) unsourced result number of a page."""
    out = []
    for line, text, sources in blocks(fill(markdown)):
        numbers = result_numbers(text)
        if not numbers:
            continue
        if not sources:
            if strict:
                out.append(f"{line}: {numbers} without a source")
            continue
        try:
            values = [v for s in sources for v in _leaves(load(s))]
        except (ValueError, KeyError, IndexError) as e:
            out.append(f"{line}: bad source {e}")
            continue
        out += [f"{line}: {n} is in none of {sources}" for n in numbers if not matches(n, values)]
    return out


def on_page_markdown(markdown: str, page, config, files) -> str:
    name = f"docs/{page.file.src_uri}"
    for problem in problems(markdown, strict=name in STRICT):
        log.error(f"{name}:{problem}")  # an error: counted by --strict even under --quiet
    return fill(markdown)

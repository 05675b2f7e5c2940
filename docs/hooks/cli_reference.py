"""MkDocs hook: the CLI reference page is generated from the argparse parsers, so it never drifts."""

from __future__ import annotations

import argparse

PLACEHOLDER = "<!-- cli-reference -->"


def _reference() -> str:
    from diffprobe.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        parts += [f"## `diffprobe {name}`", "", "```text", p.format_help().rstrip(), "```", ""]
        # Commands with their own subcommands (``diffprobe app init``): each gets a section too.
        for nested in (a for a in p._actions if isinstance(a, argparse._SubParsersAction)):
            for action, q in nested.choices.items():
                parts += [f"### `diffprobe {name} {action}`", "", "```text", q.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if PLACEHOLDER in markdown:
        return markdown.replace(PLACEHOLDER, _reference())
    return markdown

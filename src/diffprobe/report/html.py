"""A report as one self-contained HTML page: its Markdown text and tables, every figure embedded."""

from __future__ import annotations

import base64
import html
from pathlib import Path


def markdown_page(markdown: str, figures: dict[str, Path], title: str) -> str:
    """A self-contained page: the Markdown's text and tables, with every figure embedded (base64)."""
    body, table = [], []

    def flush_table():
        if table:
            rows = [r.strip("|").split("|") for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in r)  # noqa: E731
            body.append("<table><thead><tr>" + cells(rows[0], "th") + "</tr></thead><tbody>"
                        + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows[1:]) + "</tbody></table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("!["):
            name = line[line.index("(") + 1:line.index(")")].removesuffix(".png")
            if name in figures:
                data = base64.b64encode(figures[name].read_bytes()).decode()
                body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{data}"></figure>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")

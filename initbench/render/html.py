"""``report.html``: one self-contained page, readable offline, years from now, by anyone.

Figures are embedded as ``data:`` URIs and the style sheet is inline; the page loads nothing else
(no fonts, scripts or style sheets from the net), and its Content-Security-Policy says so, so a
browser refuses anything else outright. Every string from a user (labels, paths, config values,
commands) is escaped with :func:`html.escape`; numbers are formatted as in the Markdown reports,
non-finite ones spelled ``nan``, ``inf``, ``-inf`` and marked.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from initbench.render.formatting import format_number

#: Nothing but the page itself, inline styles and data: images may load.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nonfinite { color: #b00020; font-weight: bold; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: .85em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
p.note { color: #555; font-size: .9em; }
"""


def is_nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def cell(value: Any) -> str:
    """A ``<td>``: numbers right-aligned as :func:`format_number` writes them, non-finite ones marked."""
    if is_nonfinite(value):
        return f'<td class="number nonfinite" title="non-finite">{format_number(value)}</td>'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="number">{html.escape(format_number(value))}</td>'
    return f"<td>{html.escape(format_number(value))}</td>"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; every header and cell escaped."""
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in columns)
    body = "\n".join("<tr>" + "".join(cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def mapping_table(values: Mapping[str, Any]) -> str:
    """A two-column key/value table (meta.json); lists joined with spaces, mappings as JSON."""

    def shown(value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return " ".join(value)
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False, default=str)
        return value

    return table(("key", "value"), [(key, shown(value)) for key, value in values.items()])


def figure(name: str, png: bytes, caption: str) -> str:
    """A PNG embedded as a data URI, with its file name and caption."""
    data = base64.b64encode(png).decode("ascii")
    alt = html.escape(caption, quote=True)
    return (
        f'<figure id="{html.escape(name, quote=True)}"><img src="data:image/png;base64,{data}" alt="{alt}">'
        f"<figcaption>{html.escape(name)}: {html.escape(caption)}</figcaption></figure>"
    )


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def paragraph(text: str, note: bool = False) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if note else f"<p>{html.escape(text)}</p>"


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str]]) -> str:
    """The whole page: ``sections`` are ``(heading, body HTML)``, the bodies built with this module."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        paragraph(subtitle, note=True),
    ]
    for heading, body in sections:
        parts += [f"<section><h2>{html.escape(heading)}</h2>", body, "</section>"]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)

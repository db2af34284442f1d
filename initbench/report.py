"""Formatting helpers shared by experiments: numbers, Markdown tables and rich tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.table import Table as RichTable
from rich.text import Text

VERDICT_STYLES = {"stable": "green", "vanishing": "yellow", "exploding": "red", "saturated": "magenta", "dead": "bright_black"}


def format_number(value: Any) -> str:
    """Numbers for people: 4 significant digits, scientific outside [1e-3, 1e4), non-finite spelled out."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.3e}"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table, numbers formatted with :func:`format_number`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(format_number(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> RichTable:
    """A rich table; a column named ``verdict`` is coloured by verdict.

    Title, headers and cells are plain text, never markup: they hold labels and paths a user
    wrote (``data[1].npz``), which rich would otherwise read as style tags.
    """
    table = RichTable(title=Text(title))
    for index, column in enumerate(columns):
        table.add_column(Text(column), justify="left" if index == 0 or column.endswith("verdict") or column.startswith(("χ₁", "ξ")) else "right")
    for row in rows:
        cells = []
        for column, cell in zip(columns, row, strict=True):
            text = format_number(cell)
            style = VERDICT_STYLES.get(text.split(" ")[0]) if column.endswith("verdict") else None
            cells.append(Text(text, style=style or ""))
        table.add_row(*cells)
    return table


def display_layers(depth: int) -> list[int]:
    """A few layers to show in tables and histograms: the first, quarters, and the last."""
    return sorted({1, max(1, depth // 4), max(1, depth // 2), max(1, 3 * depth // 4), depth})

"""Formatting helpers shared by experiments: numbers, Markdown tables and rich tables."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

VERDICT_STYLES = {"stable": "green", "vanishing": "yellow", "exploding": "red", "saturated": "magenta", "dead": "bright_black"}
#: Scheme labels longer than this are shown in terminal tables as a short key, spelled out below.
LABEL_WIDTH = 20
#: Columns whose long labels get a key: scheme specs grow without bound (``normal:mean=0,std=2``).
KEYED_COLUMNS = ("scheme",)
#: A word that reads as a number (``1.9e+105``, ``-3``, ``nan``, ``12/30``): never broken across lines.
NUMBER = re.compile(r"[-+(]?(\d[\d.,/:e+-]*|nan|inf)[%),;:]?")


def format_number(value: Any, compact: bool = False) -> str:
    """Numbers for people: non-finite spelled out, scientific outside [1e-3, 1e4).

    4 significant digits (``1.894e+107``) for reports; ``compact`` for terminals keeps 3 in range
    and 2 in scientific notation (``1.9e+107``), so a column stays narrow without cutting a number.
    """
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
        if compact:  # keep every digit left of the point: 1234.5 -> 1235, not 1.23e+03
            return f"{value:.{max(3, math.floor(math.log10(abs(value))) + 1)}g}"
        return f"{value:.4g}"
    return f"{value:.1e}" if compact else f"{value:.3e}"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table, numbers formatted with :func:`format_number`; a ``|`` in a
    cell (a scheme label can hold one) is escaped so that it stays in its cell."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(str(column)) for column in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(format_number(value)) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def is_number(value: Any) -> bool:
    """Whether a cell is a number (or missing): JSON spells non-finite numbers as strings."""
    return value is None or value in ("nan", "inf", "-inf") or (isinstance(value, (int, float)) and not isinstance(value, bool))


@dataclass(frozen=True)
class ColumnSpec:
    """A terminal column: header, cells (rich markup), whether it may wrap, and its content widths."""

    header: str
    cells: list[str]
    justify: str
    wraps: bool

    def widths(self) -> tuple[int, int]:
        """(narrowest, widest) content width. A column that does not wrap needs its longest cell; one
        that wraps needs its longest number, and its longest other word up to LABEL_WIDTH (longer
        words, such as a sweep point's name, fold)."""
        texts = self.texts
        widest = max(cell_len(text) for text in texts)
        words = [word for text in texts for word in text.split()] if self.wraps else texts[1:]
        needed = [cell_len(word) if not self.wraps or NUMBER.fullmatch(word) else min(cell_len(word), LABEL_WIDTH) for word in words]
        narrowest = max(needed + [min(cell_len(word), LABEL_WIDTH) for word in self.header.split()] + [1])
        return narrowest, widest

    @cached_property
    def texts(self) -> list[str]:
        """The header and the cells' plain text."""
        return [self.header, *(Text.from_markup(cell).plain for cell in self.cells)]

    @cached_property
    def lengths(self) -> list[int]:
        return [cell_len(text) for text in self.texts]

    def lines(self, width: int) -> list[int]:
        """About how many lines the header and each cell take at ``width`` (their length over it,
        rounded up: cheap enough to ask at every width of a long table)."""
        return [max(1, -(-length // width)) for length in self.lengths]


class FittedTable:
    """A table that fits the console it is printed on, whatever its width, without cutting a number.

    Numbers never wrap; text wraps between words. Columns shrink toward their narrowest (the longest
    word or number) before anything else happens; a table that still does not fit is folded into
    two (or more) tables, each repeating the first column. Long scheme specs in the first column are
    replaced by a short key, ``normal [1]``, spelled out under the table. Rendered lazily, so a log
    file (80 columns) and a wide terminal each get their own layout.
    """

    def __init__(self, title: str, columns: list[ColumnSpec], legend: list[str]) -> None:
        self.title = title
        self.columns = columns
        self.legend = legend

    def column_groups(self, available: int) -> list[list[int]]:
        """Indices of the columns of each table to print: all at once if their narrowest fit."""
        narrowest = [column.widths()[0] + 3 for column in self.columns]  # padding and one border each
        groups: list[list[int]] = [[0]]
        used = 1 + narrowest[0]
        for index in range(1, len(self.columns)):
            if used + narrowest[index] > available and len(groups[-1]) > 1:
                groups.append([0])
                used = 1 + narrowest[0]
            groups[-1].append(index)
            used += narrowest[index]
        return groups

    def table(self, indices: list[int], title: str, available: int) -> RichTable:
        """A rich table of the columns ``indices``, at widths chosen here: rich's own shrinking cuts
        numbers (``1.894e…``) when a table is too wide. Each step narrows, by one cell, the column
        that adds the fewest lines to the table, never below its narrowest."""
        specs = [self.columns[index] for index in indices]
        ranges = [spec.widths() for spec in specs]
        widths = [widest for _, widest in ranges]
        lines = [spec.lines(width) for spec, width in zip(specs, widths, strict=True)]
        excess = sum(widths) + 3 * len(indices) + 1 - available
        while excess > 0:
            candidates = [position for position in range(len(specs)) if widths[position] > ranges[position][0]]
            if not candidates:
                break
            narrower = {position: specs[position].lines(widths[position] - 1) for position in candidates}

            def height_after(position: int) -> tuple[int, int]:
                trial = [narrower[position] if other == position else lines[other] for other in range(len(specs))]
                return sum(max(row) for row in zip(*trial, strict=True)), -(widths[position] - ranges[position][0])

            chosen = min(candidates, key=height_after)
            widths[chosen] -= 1
            lines[chosen] = narrower[chosen]
            excess -= 1
        table = RichTable(title=Text(title))
        for spec, width in zip(specs, widths, strict=True):
            # rich does not wrap a no-wrap column's header either: break it between words here
            header = spec.header if spec.wraps else "\n".join(textwrap.wrap(spec.header, width, break_long_words=False)) or spec.header
            table.add_column(Text(header), justify=spec.justify, width=width, no_wrap=not spec.wraps, overflow="fold")  # type: ignore[arg-type]
        for row in range(len(specs[0].cells)):
            table.add_row(*(spec.cells[row] for spec in specs))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        groups = self.column_groups(options.max_width)
        for number, indices in enumerate(groups, start=1):
            title = self.title if len(groups) == 1 else f"{self.title} ({number} of {len(groups)})"
            yield self.table(indices, title, options.max_width)
        for line in self.legend:
            yield Text(line, overflow="fold")


def short_keys(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """Labels with a word longer than LABEL_WIDTH (a spec does not wrap) → ``name [n]`` (the part
    before ``:``), and the legend lines; labels of shorter words wrap."""
    shown, legend = [], []
    for label in labels:
        if max(cell_len(word) for word in label.split() or [""]) <= LABEL_WIDTH:
            shown.append(label)
            continue
        key = f"[{len(legend) + 1}]"
        shown.append(f"{label.split(':')[0][: LABEL_WIDTH - len(key) - 1]} {key}")
        legend.append(f"{key} {label}")
    return shown, legend


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], compact: bool = True) -> FittedTable:
    """A terminal table (see :class:`FittedTable`); a column named ``verdict`` is coloured by verdict.

    Numbers are formatted with :func:`format_number`, ``compact`` unless a table's numbers are
    meant to be copied (gains); cells are rich markup.
    """
    specs, legend = [], []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        numeric = all(is_number(value) for value in values)
        # Cells are rich markup (verdict colours): user text (labels, paths such as data[1].npz) is escaped.
        cells = [escape(format_number(value, compact=compact)) for value in values]
        if column.endswith("verdict"):
            cells = [f"[{style}]{text}[/{style}]" if (style := VERDICT_STYLES.get(text.split(" ")[0].rstrip(":"))) else text for text in cells]
        if index == 0 and column in KEYED_COLUMNS:
            cells, legend = short_keys(cells)
        justify = "left" if index == 0 or not numeric else "right"
        specs.append(ColumnSpec(column, cells, justify, wraps=not numeric))
    return FittedTable(title, specs, legend)


def display_layers(depth: int) -> list[int]:
    """A few layers to show in tables and histograms: the first, quarters, and the last."""
    return sorted({1, max(1, depth // 4), max(1, depth // 2), max(1, 3 * depth // 4), depth})


def reached_text(reached: Sequence[int | None]) -> str:
    """``k of n reached, median step s``: the median over the seeds that reached the target only."""
    steps = sorted(step for step in reached if step is not None)
    if not steps:
        return f"0 of {len(reached)} reached"
    return f"{len(steps)} of {len(reached)} reached, median step {steps[(len(steps) - 1) // 2]}"

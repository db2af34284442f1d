"""A run's or sweep's report in memory (:class:`Report`): what summary.md, the terminal, report.md
and report.html show, built once from the saved files and written by whichever asked for it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from initbench.render import html as html_report
from initbench.render.formatting import markdown_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import RenderableType


def png_bytes(figure: Figure) -> bytes:
    """A figure's PNG, at the one resolution every figure of initbench is written at."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


@dataclass
class Report:
    """A report's content, in memory.

    ``tables`` maps a heading to ``(file name, columns, rows, note)`` and ``figures`` a PNG's file
    name to ``(its bytes, caption)``: report.md and report.html show both. ``summary_md`` is the
    run directory's summary.md (None: the experiment has none, as ``phase``), and ``console``
    what the terminal shows at the end of the run.
    """

    title: str
    subtitle: str
    config_text: str
    environment: dict[str, Any]
    tables: dict[str, tuple[str, Sequence[str], list[Sequence[Any]], str]] = field(default_factory=dict)
    figures: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary_md: str | None = None
    console: list[RenderableType] = field(default_factory=list)

    def add_figure(self, name: str, figure: Figure, caption: str) -> None:
        self.figures[name] = (png_bytes(figure), caption)

    def set_summary(self, sections: Sequence[str]) -> None:
        """summary.md: the report's title, then ``sections`` as paragraphs."""
        self.summary_md = f"# {self.title}\n\n" + "\n\n".join(sections) + "\n"

    def markdown(self) -> str:
        sections = [f"# {self.title}", self.subtitle, *self.notes]
        for heading, (_, columns, rows, note) in self.tables.items():
            sections += [f"## {heading}", *([note] if note else []), markdown_table(columns, rows)]
        sections += [f"![{caption}]({name})" for name, (_, caption) in self.figures.items()]
        return "\n\n".join(sections) + "\n"

    def html(self) -> str:
        sections = [("About", "".join(html_report.paragraph(note, note=True) for note in self.notes))] if self.notes else []
        sections.append(("Config", html_report.preformatted(self.config_text)))
        for heading, (_, columns, rows, note) in self.tables.items():
            sections.append((heading, (html_report.paragraph(note, note=True) if note else "") + html_report.table(columns, rows)))
        if self.figures:
            sections.append(("Figures", "\n".join(html_report.figure(name, png, caption) for name, (png, caption) in self.figures.items())))
        sections.append(("Environment", html_report.mapping_table(self.environment)))
        return html_report.page(self.title, self.subtitle, sections)

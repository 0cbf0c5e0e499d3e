"""The report's table for the Python API: as rich renderables (`rich.print(report)`) and as plain
text (`print(report)`), drawn by the same `print_table` as `cnncalc analyze`."""
from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from typing import Any

from cnncalc.analysis.report import Report

TEXT_WIDTH = 120  #: the width of `str(report)` where there is no terminal to measure


class _Collect:
    """What `print_table` prints, kept as renderables (strings read as rich markup, as console.print reads them)."""

    def __init__(self, console: Any, width: int):
        self.console, self.width = console, width
        self.items: list[Any] = []

    def print(self, obj: Any, highlight: bool = False, **_: Any) -> None:
        self.items.append(self.console.render_str(obj, highlight=highlight) if isinstance(obj, str) else obj)


def table_renderables(report: Report, console: Any, width: int, depth: int | None = None,
                      columns: Sequence[int] | None = None) -> list[Any]:
    """The title, layer table, totals and warnings of `analyze`, fitted to `width` columns."""
    from cnncalc.render.terminal import print_table

    out = _Collect(console, width)
    print_table(report, out, depth, columns)
    return out.items


def table_text(report: Report, width: int | None = None, depth: int | None = None,
               columns: Sequence[int] | None = None) -> str:
    """The table as plain text (no colour codes, no trailing spaces) at `width` columns (default:
    the terminal's, else TEXT_WIDTH); columns that do not fit whole are left out and named."""
    from rich.console import Console

    if width is None:
        width = shutil.get_terminal_size((TEXT_WIDTH, 24)).columns
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 40), color_system=None, no_color=True, highlight=False,
                      force_terminal=False, force_jupyter=False, force_interactive=False, soft_wrap=False)
    for item in table_renderables(report, console, console.width, depth, columns):
        console.print(item)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))

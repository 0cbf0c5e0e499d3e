"""User-facing errors: one exception family, each problem located in the spec file.

Anything that is not a :class:`CnnError` reaching the CLI is a bug in cnncalc.
"""
from __future__ import annotations

import contextlib
import difflib
import gc
from dataclasses import dataclass, field
from typing import Iterable

from cnncalc.safe import visible as _one_line  # every field of a message on one safe line


def _shortened(text: str, most: int = 240) -> str:
    """A file name as messages show it: whole up to `most` characters, else its start and end
    around an ellipsis (a path of a megabyte, as a program may pass, prints as one line)."""
    return text if len(text) <= most else f"{text[:most // 2]}…{text[-(most // 2):]}"


@dataclass(frozen=True)
class Problem:
    """One located problem: ``file:line:col: [layer] message``."""

    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    layer: str | None = None
    severity: str = "error"
    index: int | None = None
    """Position of the layer in the expanded network (0-based), when there is one."""

    def location(self) -> str:
        """file:line:col, or 'cnncalc' for a problem that is about no file (a device, an option)."""
        parts = [_one_line(_shortened(self.file)) if self.file else "cnncalc"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def who(self) -> str:
        """'fc6 (#15)': the layer's name and index, or '' for problems outside layers."""
        if not self.layer:
            return ""
        name = _one_line(self.layer)
        return f"{name} (#{self.index})" if self.index is not None else name

    def __str__(self) -> str:
        """One line: the file, layer and message with their control and format characters
        shown as escapes (cnncalc.safe.visible's rule)."""
        where = f" {self.who()}:" if self.layer else ""
        return f"{self.location()}:{where} {_one_line(self.message)}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "col": self.col, "layer": self.layer,
                "index": self.index, "severity": self.severity, "message": self.message}


@dataclass
class CnnError(Exception):
    """A user mistake (bad spec, bad option, failed check). Carries every problem found."""

    problems: list[Problem] = field(default_factory=list)
    exit_code: int = 1
    """1 for a bad spec or a failed check; 2 when the command line itself is wrong (a file that
    cannot be opened, an unknown device)."""

    @classmethod
    def single(cls, message: str, exit_code: int = 1, **where) -> CnnError:
        return cls([Problem(message, **where)], exit_code)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class LayerError(ValueError):
    """Raised by a layer rule (shape, channels, groups); the analyzer adds file/line/layer."""

    def __init__(self, message: str, field: str | tuple | None = None):
        super().__init__(message)
        self.field = (field,) if isinstance(field, str) else field


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building large, acyclic structures: its full
    collections rescan every live object, which makes 100k-layer networks superlinear."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def did_you_mean(word: object, choices: Iterable) -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''. Among many choices only those of
    about the same length are compared (difflib's ratio is slow)."""
    word = str(word)[:200]
    pool = [c for c in choices if isinstance(c, str)]
    if len(pool) > 500:
        pool = [c for c in pool if abs(len(c) - len(word)) <= 2][:500]
    close = difflib.get_close_matches(word, pool, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""

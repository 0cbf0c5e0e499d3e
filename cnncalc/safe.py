"""Foreign text (from specs, file names, reports, peaks files) made safe for one line of output.

`visible` is the one function: every control character (C0 with tab and newline, DEL, C1 with
ESC's CSI/OSC), every format character (Unicode category Cf: the Bidi_Control marks U+061C,
U+200E/F, U+202A–E, U+2066–9, and U+200B–D, U+2060, U+FEFF, …), the line and paragraph
separators (Zl, Zp) and lone surrogates are written as visible escapes (\\xNN, \\uNNNN,
\\UNNNNNNNN). What comes out is printable on one line: a newline in a spec value can never
start a new output line (a CI runner executes lines that start with ``::``), and nothing can
reorder, hide or colour the text around it. `markup` also escapes rich markup.
"""
from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

#: the Unicode general categories written as escapes (control, format, surrogate, line and paragraph separators)
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def hidden(c: str) -> bool:
    """Whether the character `c` is written as an escape by `visible`."""
    return unicodedata.category(c) in HIDDEN_CATEGORIES


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def visible(text: object) -> str:
    """`text` on one printable line: each control, format or separator character (see the
    module docstring) written as \\xNN, \\uNNNN or \\UNNNNNNNN."""
    s = str(text)
    if s.isprintable():  # the common case; every hidden character is non-printable for Python
        return s
    return "".join(_escape(c) if hidden(c) else c for c in s)


def json_text(dumped: str) -> str:
    """JSON from json.dumps(ensure_ascii=False) with the characters `visible` escapes that it
    leaves raw (C1 controls, format and separator characters; they only occur inside strings)
    as \\uNNNN (surrogate pairs above U+FFFF)."""
    if dumped.isprintable():
        return dumped

    def code(c: str) -> str:
        n = ord(c)
        if n < 0x10000:
            return f"\\u{n:04x}"
        n -= 0x10000
        return f"\\u{0xd800 + (n >> 10):04x}\\u{0xdc00 + (n & 0x3ff):04x}"

    return "".join(code(c) if c not in "\n\t " and hidden(c) else c for c in dumped)


class Plain:
    """Foreign text, made visible, that rich prints as the characters it holds: its ``__rich__``
    is a plain Text, so no markup is read in it whatever code hands it to rich (a table cell
    included, where a str would be parsed). ``str()`` gives the text to everything else."""

    __slots__ = ("text",)

    def __init__(self, text: object):
        self.text = visible(text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Plain({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plain) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __rich__(self) -> Text:
        from rich.text import Text

        return Text(self.text)


def markup(text: object) -> str:
    """`text` safe inside rich markup: visible, with its own markup escaped."""
    from rich.markup import escape

    return escape(visible(text))

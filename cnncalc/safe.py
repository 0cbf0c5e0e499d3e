"""Text from specs, file names and reports made safe to print: control characters (terminal
escape sequences, carriage returns, BEL) and invisible bidi/zero-width characters are shown
as visible escapes, and rich markup is escaped."""
from __future__ import annotations

import re

_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def visible(text: object) -> str:
    """`text` with every control or invisible character written as \\xNN or \\uNNNN."""
    def show(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return _HIDDEN.sub(show, str(text))


def json_text(dumped: str) -> str:
    """JSON from json.dumps(ensure_ascii=False) with the invisible characters it leaves raw
    (C1 controls, bidi and zero-width marks; they only occur inside strings) as \\uNNNN."""
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def markup(text: object) -> str:
    """`text` safe inside rich markup: visible, with its own markup escaped."""
    from rich.markup import escape

    return escape(visible(text))
